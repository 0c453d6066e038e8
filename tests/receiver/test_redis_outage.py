"""Redis going away is a 503 the sender retries, never a 500, and the relay recovers alone."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartRelay
from tests.support.http import relay_metrics
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign


async def test_redis_stopped_and_restarted_during_a_run(
    start_relay: StartRelay, own_redis: RedisServer, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(own_redis.url, RELAY_REDIS_TIMEOUT=1)
    endpoint = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    readyz = f"http://127.0.0.1:{server.admin_port}/readyz"
    before = event_body()
    async with http.post(endpoint, data=before, headers=sign(before, msg_id="a")) as response:
        assert response.status == 200

    own_redis.stop()
    during = event_body()
    async with http.post(endpoint, data=during, headers=sign(during, msg_id="b")) as response:
        assert response.status == 503
        assert int(response.headers["Retry-After"]) > 0
        assert (await response.json())["reason"] == "redis_unavailable"
    async with http.get(readyz) as response:
        assert response.status == 503
        assert "redis" in await response.json()

    # Restarted without persistence: streams, dedupe marks and the script cache are gone.
    own_redis.start()
    async with http.get(readyz) as response:
        assert response.status == 200
    async with http.post(endpoint, data=during, headers=sign(during, msg_id="b")) as response:
        assert (response.status, (await response.json())["status"]) == (200, "accepted")
    [(_, fields)] = own_redis.client().xrange("anyformat:events")
    assert fields[b"id"] == b"b"
    metrics = await relay_metrics(http, server)
    assert 'relay_deliveries_unavailable_total{reason="redis_unavailable"} 1.0' in metrics
    assert "relay_redis_errors_total 1.0" in metrics


async def test_the_relay_starts_while_redis_is_down_and_serves_once_it_is_up(
    start_relay: StartRelay, own_redis: RedisServer, http: aiohttp.ClientSession
) -> None:
    own_redis.stop()
    server = await start_relay(own_redis.url, RELAY_REDIS_TIMEOUT=1)
    endpoint = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    body = event_body()
    async with http.post(endpoint, data=body, headers=sign(body)) as response:
        assert response.status == 503
    own_redis.start()
    async with http.post(endpoint, data=body, headers=sign(body)) as response:
        assert response.status == 200
