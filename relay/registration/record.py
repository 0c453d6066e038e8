"""The registration record: what the relay keeps in Redis about its subscription.

Key: ``{RELAY_STREAM_PREFIX}:registration:{<RELAY_PUBLIC_URL>}`` (the braces are literal: a
Redis Cluster hash tag, so the record and its lock share a slot). Value: one JSON document,
replaced as a whole, so readers never see half an update::

    {
      "id": "wh_1234567890",
      "url": "https://relay.example.com/webhooks/anyformat",
      "events": ["extraction.completed", "extraction.failed"],
      "secret": "whsec_...",
      "created_at": "2024-03-24T12:00:00.000Z",
      "retiring": [{"id": "wh_...", "secret": "whsec_...", "delete_after": 1711281600.0}]
    }

``retiring`` lists subscriptions replaced by a rotation whose secret stays accepted until
they are deleted upstream. With ``RELAY_SECRET_ENCRYPTION_KEY`` set, every ``secret`` is
stored as ``enc:v1:<Fernet token>`` instead of in clear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from relay.redis.client import Redis
from relay.redis.keys import registration_key

SEALED_PREFIX = "enc:v1:"


class SecretUnreadable(Exception):
    """The stored secret cannot be read with the configured key: a start-up error."""


class SecretCodec:
    """Seals secrets at rest with Fernet (AES-128-CBC + HMAC-SHA256) when a key is set."""

    def __init__(self, key: SecretStr | None = None) -> None:
        self._fernet = Fernet(key.get_secret_value().encode()) if key is not None else None

    def seal(self, secret: str) -> str:
        if self._fernet is None:
            return secret
        return SEALED_PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(SEALED_PREFIX):
            return stored  # written before encryption was turned on: still readable
        if self._fernet is None:
            raise SecretUnreadable(
                "the stored webhook secret is encrypted but RELAY_SECRET_ENCRYPTION_KEY is unset"
            )
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "RELAY_SECRET_ENCRYPTION_KEY does not decrypt the stored webhook secret "
                "(wrong key?)"
            ) from None


class RetiringSubscription(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    secret: SecretStr
    delete_after: float | None = None


class RegistrationRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    url: str
    events: list[str]
    secret: SecretStr
    created_at: str
    retiring: list[RetiringSubscription] = Field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        """Every secret a delivery may be signed with, the current one first."""
        current = [self.secret.get_secret_value()]
        return current + [old.secret.get_secret_value() for old in self.retiring]

    def retiring_due(self, now: float) -> list[RetiringSubscription]:
        """Retiring subscriptions whose grace period is over."""
        return [o for o in self.retiring if o.delete_after is not None and o.delete_after <= now]

    @property
    def held_ids(self) -> set[str]:
        """Subscriptions whose secret we hold."""
        return {self.id, *(old.id for old in self.retiring)}


def _document(record: RegistrationRecord, convert: Callable[[str], str]) -> dict[str, Any]:
    """The record as plain JSON data, ``convert`` applied to every secret."""
    document = record.model_dump(mode="json")
    document["secret"] = convert(record.secret.get_secret_value())
    document["retiring"] = [
        {**old.model_dump(mode="json"), "secret": convert(old.secret.get_secret_value())}
        for old in record.retiring
    ]
    return document


async def load_record(
    redis: Redis, prefix: str, public_url: str, codec: SecretCodec | None = None
) -> RegistrationRecord | None:
    """The stored record with its secrets readable, or ``None``.

    A corrupt record raises ``pydantic.ValidationError``; an unreadable secret
    :class:`SecretUnreadable`.
    """
    raw = await redis.get(registration_key(prefix, public_url))
    if raw is None:
        return None
    stored = RegistrationRecord.model_validate_json(raw)
    return RegistrationRecord.model_validate(_document(stored, (codec or SecretCodec()).open))


async def save_record(
    redis: Redis, prefix: str, record: RegistrationRecord, codec: SecretCodec | None = None
) -> None:
    """Replace the record of ``record.url`` as a whole, its secrets sealed when configured."""
    document = _document(record, (codec or SecretCodec()).seal)
    await redis.set(registration_key(prefix, record.url), orjson.dumps(document))


async def delete_record(redis: Redis, prefix: str, public_url: str) -> None:
    await redis.delete(registration_key(prefix, public_url))
