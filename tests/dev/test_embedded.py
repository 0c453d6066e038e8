"""The embedded server of `relay dev` runs the relay's ingest path as Redis does.

(The worker's cases run on it too: tests/worker parametrizes its client over both.)
"""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
import redis

from relay.dev.embedded import EmbeddedRedis, start_embedded_redis
from tests.conftest import StartRelay
from tests.support.http import concurrent_copies
from tests.support.signing import event_body, sign


@pytest.fixture
def embedded() -> Iterator[EmbeddedRedis]:
    server = start_embedded_redis()
    yield server
    server.stop()


async def test_ingest_dedupe_and_fanout_on_the_embedded_server(
    start_relay: StartRelay, embedded: EmbeddedRedis, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(embedded.url)
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    body = event_body()
    headers = sign(body, msg_id="msg_embedded")

    statuses = await concurrent_copies(http, url, body, headers, 50)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    client = redis.Redis.from_url(embedded.url)
    assert client.xlen("anyformat:events") == 1
    assert client.xlen("anyformat:events:extraction.completed") == 1

    client.script_flush()  # as after a restart: the script is loaded again
    other = event_body()
    async with http.post(url, data=other, headers=sign(other)) as response:
        assert (await response.json())["status"] == "accepted"
    assert client.xlen("anyformat:events") == 2
