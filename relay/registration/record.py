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
      "retiring": [{"id": "wh_...", "secret": "whsec_...", "delete_after": 1711281600}]
    }

``retiring`` lists subscriptions replaced by a rotation whose secret stays accepted until
they are deleted upstream.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from redis.asyncio import Redis

from relay.streams.keys import registration_key


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


async def load_record(redis: Redis, prefix: str, public_url: str) -> RegistrationRecord | None:
    """The stored record, or ``None``; a corrupt record raises ``pydantic.ValidationError``."""
    raw = await redis.get(registration_key(prefix, public_url))
    if raw is None:
        return None
    return RegistrationRecord.model_validate_json(raw)
