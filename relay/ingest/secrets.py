"""The signing keys in force: static ones from the settings plus the registration record's.

The record is re-read in the background, so a rotation or another replica's registration
reaches this process within ``RELAY_SECRET_REFRESH_INTERVAL`` seconds, without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.registration.record import load_record

log = structlog.get_logger("relay.secrets")


class SecretSource:
    def __init__(
        self,
        static_secrets: list[str],
        key_for: Callable[[str], bytes],
        *,
        redis: Redis | None = None,
        prefix: str = "",
        public_url: str | None = None,
    ) -> None:
        self._key_for = key_for
        self._static = tuple(key_for(secret) for secret in static_secrets)
        self._redis = redis
        self._prefix = prefix
        self._public_url = public_url
        self.keys: tuple[bytes, ...] = self._static
        self._fingerprint = ""

    @property
    def reads_record(self) -> bool:
        return self._redis is not None and self._public_url is not None

    async def refresh(self) -> None:
        """Re-read the registration record; keeps the last good keys when Redis fails."""
        if self._redis is None or self._public_url is None:
            return
        try:
            record = await load_record(self._redis, self._prefix, self._public_url)
        except RedisError:
            return  # serve with what we have; readiness reports Redis itself
        except ValidationError as exc:
            log.error("registration_record_invalid", errors=exc.error_count())
            return
        secrets = record.secrets if record is not None else []
        stored = []
        for index, secret in enumerate(secrets):
            try:
                stored.append(self._key_for(secret))
            except ValueError:
                log.error("registration_secret_unusable", position=index)
        self._set_stored(tuple(stored))

    def _set_stored(self, stored: tuple[bytes, ...]) -> None:
        fingerprint = hashlib.sha256(b"".join(stored)).hexdigest()[:12] if stored else ""
        if fingerprint != self._fingerprint:
            # The fingerprint identifies a key set in logs without revealing any key.
            log.info("signing_keys_loaded", stored=len(stored), fingerprint=fingerprint or None)
            self._fingerprint = fingerprint
        self.keys = self._static + stored

    async def run(self, interval: float) -> None:
        """Refresh forever; cancelled at shutdown."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh()
