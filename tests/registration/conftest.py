from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from relay.registration.client import AnyFormatClient
from relay.registration.registrar import Registrar
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat

PUBLIC_URL = "https://relay.example.test/webhooks/anyformat"
EVENTS = ["extraction.completed", "extraction.failed"]


@pytest.fixture
def fake_api() -> Iterator[FakeAnyFormat]:
    api = FakeAnyFormat().start()
    yield api
    api.close()


@pytest.fixture
async def api_client(fake_api: FakeAnyFormat) -> AsyncIterator[AnyFormatClient]:
    async with AnyFormatClient(fake_api.url, SecretStr(API_KEY), total_timeout=2) as client:
        yield client


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the waits the client asks for instead of sleeping through them."""
    import asyncio

    from relay.registration import client as client_module

    waits: list[float] = []

    async def recorded_sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(0)

    monkeypatch.setattr(client_module, "backoff_sleep", recorded_sleep)
    return waits


def registrar(client: Redis, api: AnyFormatClient, **options: object) -> Registrar:
    return Registrar(
        client, api, prefix="anyformat", public_url=PUBLIC_URL, events=EVENTS, **options
    )  # type: ignore[arg-type]
