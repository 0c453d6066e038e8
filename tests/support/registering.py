"""Relays that register with the fake AnyFormat API: their settings, env and secret."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.redis_server import RedisServer

# Not a reserved domain (relay run refuses .test, example.com …): nothing ever resolves it,
# the fake API only stores it.
PUBLIC_URL = "https://relay.anyformat-relay-tests.net/webhooks/anyformat"
PATH = "/webhooks/anyformat"


def registering(fake_api: FakeAnyFormat, **extra: object) -> dict[str, object]:
    """Settings for an in-process relay registering with the fake API."""
    return {
        "RELAY_REGISTER": True,
        "RELAY_WEBHOOK_SECRET": None,
        "ANYFORMAT_API_KEY": API_KEY,
        "ANYFORMAT_BASE_URL": fake_api.url,
        "RELAY_PUBLIC_URL": PUBLIC_URL,
        "RELAY_SECRET_REFRESH_INTERVAL": 0.1,
        **extra,
    }


def process_env(server: RedisServer, fake_api: FakeAnyFormat, **extra: str) -> dict[str, str]:
    """The environment of a `relay run` process registering with the fake API."""
    return {
        "RELAY_REDIS_URL": server.url,
        "ANYFORMAT_API_KEY": API_KEY,
        "ANYFORMAT_BASE_URL": fake_api.url,
        "RELAY_PUBLIC_URL": PUBLIC_URL,
        **extra,
    }


def only_secret(fake_api: FakeAnyFormat) -> str:
    """The signing secret of the one webhook registered for ``PUBLIC_URL``."""
    [webhook] = fake_api.for_url(PUBLIC_URL)
    return fake_api.secrets[webhook["id"]]


def record_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the waits the API client asks for (Retry-After, backoff) instead of sleeping."""
    from relay.registration import client as client_module

    waits: list[float] = []

    async def recorded_sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    monkeypatch.setattr(client_module, "backoff_sleep", recorded_sleep)
    return waits
