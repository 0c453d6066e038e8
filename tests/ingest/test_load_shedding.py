"""RELAY_MAX_IN_FLIGHT: with Redis stalled, work in flight is bounded; the rest gets 503."""

from __future__ import annotations

import asyncio

import aiohttp

from relay.receiver.app import RelayServer
from tests.conftest import StartRelay
from tests.support.http import relay_metrics
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for


async def test_a_stalled_redis_sheds_load_beyond_the_limit_and_recovers(
    start_relay: StartRelay, own_redis: RedisServer, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(own_redis.url, RELAY_MAX_IN_FLIGHT=5, RELAY_REDIS_TIMEOUT=10)
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"

    async def deliver() -> tuple[int, str, str | None]:
        body = event_body()
        async with http.post(url, data=body, headers=sign(body)) as response:
            document = await response.json()
            reason = document.get("reason") or document["status"]
            return response.status, reason, response.headers.get("Retry-After")

    own_redis.client().execute_command("CLIENT", "PAUSE", "1500", "ALL")
    admitted = [asyncio.create_task(deliver()) for _ in range(5)]
    await wait_for(lambda: _in_flight(http, server, 5), what="five deliveries waiting on Redis")
    shed = await asyncio.gather(*(deliver() for _ in range(15)))
    assert all(status == 503 and reason == "overloaded" for status, reason, _ in shed)
    assert all(retry_after and retry_after.isdigit() for *_, retry_after in shed)
    # Refused at once, not queued: all answered while the admitted five still wait.
    assert not any(task.done() for task in admitted)
    assert "relay_deliveries_in_flight 5.0" in await relay_metrics(http, server)
    results = await asyncio.gather(*admitted)
    assert [(status, outcome) for status, outcome, _ in results] == [(200, "accepted")] * 5

    status, outcome, _ = await deliver()  # recovered by itself
    assert (status, outcome) == (200, "accepted")
    assert own_redis.client().xlen("anyformat:events") == 6
    text = await relay_metrics(http, server)
    assert "relay_deliveries_in_flight 0.0" in text
    assert 'relay_deliveries_unavailable_total{reason="overloaded"} 15.0' in text


async def _in_flight(http: aiohttp.ClientSession, server: RelayServer, count: int) -> bool:
    return f"relay_deliveries_in_flight {count:.1f}" in await relay_metrics(http, server)
