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

from relay.redis.client import Redis
from relay.redis.errors import REDIS_DOWN
from relay.registration.record import (
    RegistrationRecord,
    SecretCodec,
    SecretUnreadable,
    load_record,
)

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
        codec: SecretCodec | None = None,
    ) -> None:
        self._key_for = key_for
        self._static = tuple(key_for(secret) for secret in static_secrets)
        self._redis = redis
        self._prefix = prefix
        self._public_url = public_url
        self.codec = codec or SecretCodec()
        self.keys: tuple[bytes, ...] = self._static
        self._fingerprint = ""

    @property
    def reads_record(self) -> bool:
        return self._redis is not None and self._public_url is not None

    async def refresh(self, *, strict: bool = False) -> None:
        """Re-read the registration record; keeps the last good keys when that fails.

        ``strict``: an unreadable secret (wrong encryption key) raises instead.
        """
        if self._redis is None or self._public_url is None:
            return
        try:
            record = await load_record(self._redis, self._prefix, self._public_url, self.codec)
        except REDIS_DOWN:
            return  # serve with what we have; readiness reports Redis itself
        except ValidationError as exc:
            log.error("registration_record_invalid", errors=exc.error_count())
            return
        except SecretUnreadable as exc:
            if strict:
                raise
            log.error("registration_secret_unreadable", error=str(exc))
            return
        self.use(record)

    def use(self, record: RegistrationRecord | None) -> None:
        """Take the keys of ``record`` (``None``: no record) next to the static ones."""
        stored = []
        for index, secret in enumerate(record.secrets if record is not None else []):
            try:
                stored.append(self._key_for(secret))
            except ValueError:
                log.error("registration_secret_unusable", position=index)
        fingerprint = hashlib.sha256(b"".join(stored)).hexdigest()[:12] if stored else ""
        if fingerprint != self._fingerprint:
            # The fingerprint identifies a key set in logs without revealing any key.
            log.info("signing_keys_loaded", stored=len(stored), fingerprint=fingerprint or None)
            self._fingerprint = fingerprint
        self.keys = self._static + tuple(stored)

    async def run(self, interval: float) -> None:
        """Refresh forever; cancelled at shutdown."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh()
