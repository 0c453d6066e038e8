"""Keeps a serving relay registered: registration never takes down a relay that could serve.

``relay run`` serves from the start and registers in the background. What stops it is only
what no retry can fix while it has nothing to serve with: a rejected API key with no stored
secret, a request the API refuses (422) at start-up, a stored secret the encryption key
cannot read. Everything else is waited out and retried, loudly:

- Redis unreachable (at start-up too): retried with backoff; the relay serves once it is back;
- 401/403 with a stored secret: the relay serves with it and stays ready, logs
  ``anyformat_api_key_rejected`` at error level on every attempt (never the key), sets
  ``relay_registration_api_key_rejected`` to 1, and retries with backoff;
- a lost lock: another replica carries on; this one tries again later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from relay.redis.errors import REDIS_DOWN
from relay.registration import client as api
from relay.registration.client import ApiKeyRejected, ApiValidationError
from relay.registration.lock import LockLost
from relay.registration.registrar import Registrar

log = structlog.get_logger("relay.registration")

RETRY_BASE = 0.5
REDIS_RETRY_CAP = 10.0  # Redis coming back should be noticed soon: serving may wait on it
API_RETRY_CAP = 60.0  # an API that refuses our key is asked again at most once a minute


class RegistrationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.api_key_rejected = Gauge(
            "relay_registration_api_key_rejected",
            "1 while AnyFormat answers 401/403 to ANYFORMAT_API_KEY (the relay serves with "
            "its stored secret meanwhile).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.failures = Counter(
            "relay_registration_failures",
            "Registration attempts (start-up or maintenance) that failed, by reason.",
            ["reason"],
            registry=registry,
        )


@dataclass
class RegistrationStatus:
    """What this relay's keeper last saw, for the operator API: ``state`` is
    ``registering`` until the first success, then ``registered``, or what went wrong last."""

    state: str = "registering"
    checked_at: float | None = None  # Unix time of the last attempt, either way
    error: str | None = None  # the last failure's reason (never the key)

    def saw(self, state: str, error: str | None = None) -> None:
        self.state, self.error, self.checked_at = state, error, time.time()


class RegistrationKeeper:
    def __init__(
        self,
        registrar: Registrar,
        metrics: RegistrationMetrics,
        *,
        can_serve: Callable[[], bool],
        recheck_interval: float,
        retire_interval: float = 5.0,
        status: RegistrationStatus | None = None,
    ) -> None:
        """``can_serve``: whether the relay holds a signing key right now."""
        self.registrar = registrar
        self.status = status or RegistrationStatus()
        self.metrics = metrics
        self.can_serve = can_serve
        self.recheck_interval = recheck_interval
        self.retire_interval = retire_interval
        self.registered = False

    async def run(self) -> None:
        """Register, then keep the subscription right; returns only by raising what must
        stop the relay."""
        await self._register()
        await self._maintain()

    async def _register(self) -> None:
        failures = 0
        while True:
            try:
                record = await self.registrar.ensure()
            except Exception as exc:
                cap = await self._survive(exc, starting=True)
            else:
                self.registrar.on_record(record)
                self.metrics.api_key_rejected.set(0)
                self.registered = True
                self.status.saw("registered")
                return
            failures += 1
            await asyncio.sleep(api.retry_delay(failures, base=RETRY_BASE, cap=cap))

    async def _maintain(self) -> None:
        """Finish rotations; re-verify the subscription every ``recheck_interval``."""
        next_check = time.monotonic() + self.recheck_interval
        while True:
            await asyncio.sleep(self.retire_interval)
            try:
                await self.registrar.retire_due()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.recheck_interval
                    self.registrar.on_record(await self.registrar.ensure())
                    self.metrics.api_key_rejected.set(0)
                    self.status.saw("registered")
            except Exception as exc:
                # Serving goes on with the stored secret; try again at the next round.
                await self._survive(exc, starting=False)

    async def _survive(self, exc: Exception, *, starting: bool) -> float:
        """Log and count a failed attempt, and say how long retries may wait at most;
        re-raise it when it must stop the relay."""
        self.status.saw(_state_after(exc), _reason(exc))
        if isinstance(exc, REDIS_DOWN):
            self.metrics.failures.labels("redis_unavailable").inc()
            log.warning("registration_waiting_for_redis", error=type(exc).__name__)
            return REDIS_RETRY_CAP
        if isinstance(exc, LockLost):
            self.metrics.failures.labels("lock_lost").inc()
            log.error("registration_lock_lost", key=str(exc))
            return REDIS_RETRY_CAP
        if isinstance(exc, ApiKeyRejected):
            self.metrics.failures.labels("api_key_rejected").inc()
            if not await self._has_a_secret():
                raise exc
            self.metrics.api_key_rejected.set(1)
            log.error(
                "anyformat_api_key_rejected",
                error=str(exc),
                action="serving with the stored secret; fix ANYFORMAT_API_KEY",
            )
            return API_RETRY_CAP
        if isinstance(exc, ApiValidationError) and not starting:
            self.metrics.failures.labels("api_refused").inc()
            log.error("registration_maintenance_refused", error=str(exc))
            return API_RETRY_CAP
        raise exc

    async def _has_a_secret(self) -> bool:
        """Whether the relay can serve without the API: a key already loaded, or a stored
        record (loaded now, so serving starts at once). When Redis cannot say, assume it
        can, and keep retrying: only a known absence stops the relay."""
        if self.can_serve():
            return True
        try:
            record = await self.registrar.load()
        except REDIS_DOWN:
            return True
        if record is None:
            return False
        self.registrar.on_record(record)
        return True


def _state_after(exc: Exception) -> str:
    if isinstance(exc, REDIS_DOWN):
        return "waiting_for_redis"
    if isinstance(exc, LockLost):
        return "lock_lost"
    if isinstance(exc, ApiKeyRejected):
        return "api_key_rejected"
    if isinstance(exc, ApiValidationError):
        return "refused"
    return "failed"


def _reason(exc: Exception) -> str:
    """The API's own words for its errors (they never hold the key); a type name else."""
    if isinstance(exc, api.ApiError):
        return str(exc)
    return type(exc).__name__
