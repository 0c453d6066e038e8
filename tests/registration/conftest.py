from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from relay.registration.client import AnyFormatClient
from relay.registration.registrar import Registrar
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.registering import PUBLIC_URL, record_backoff

EVENTS = ["extraction.completed", "extraction.failed"]


@pytest.fixture
async def api_client(fake_api: FakeAnyFormat) -> AsyncIterator[AnyFormatClient]:
    async with AnyFormatClient(fake_api.url, SecretStr(API_KEY), total_timeout=2) as client:
        yield client


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the waits the client asks for instead of sleeping through them."""
    return record_backoff(monkeypatch)


def registrar(client: Redis, api: AnyFormatClient, **options: object) -> Registrar:
    return Registrar(
        client, api, prefix="anyformat", public_url=PUBLIC_URL, events=EVENTS, **options
    )  # type: ignore[arg-type]
