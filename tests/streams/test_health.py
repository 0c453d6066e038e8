"""Stream health on /metrics agrees with what Redis itself says (XINFO GROUPS, XPENDING,
XLEN, ZCARD), on a real redis-server."""

from __future__ import annotations

import time

import aiohttp
import redis
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from relay import __version__
from relay.redis.keys import dedupe_key
from relay.streams.health import StreamHealthCollector, StreamHealthMonitor
from relay.streams.writer import FanoutWriter
from tests.conftest import StartRelay
from tests.support.entry_schemas import dead_letter_fields, relay_entry, relay_fields
from tests.support.http import relay_metrics
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for

STREAM = "anyformat:events"
NEVER_WRITTEN = "anyformat:events:extraction.failed"


async def collected(client: Redis, streams: list[str]) -> CollectorRegistry:
    registry = CollectorRegistry()
    collector = StreamHealthCollector()
    registry.register(collector)
    await StreamHealthMonitor(client, lambda: streams, collector).refresh()
    return registry


async def test_the_figures_agree_with_xinfo_groups_and_xpending(
    client: Redis, redis_sync: redis.Redis
) -> None:
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    redis_sync.xadd(STREAM, relay_fields("old"), id=f"{an_hour_ago}-0")
    writer = FanoutWriter(client, dedupe_ttl=60)
    for n in range(30):
        await writer.write(relay_entry(f"m{n}"), [STREAM])
    redis_sync.xgroup_create(STREAM, "slow", id="0")
    redis_sync.xgroup_create(STREAM, "done", id="0")
    redis_sync.xadd(STREAM, relay_fields("late"))  # unread by both groups
    redis_sync.xreadgroup("slow", "c1", {STREAM: ">"}, count=12)
    redis_sync.xack(STREAM, "slow", *[i for i, _ in redis_sync.xrange(STREAM, count=12)][2:])
    redis_sync.xreadgroup("done", "c1", {STREAM: ">"})
    redis_sync.xack(STREAM, "done", *[i for i, _ in redis_sync.xrange(STREAM)])
    redis_sync.xadd(f"{STREAM}:dlq", dead_letter_fields(0, error="boom"))

    registry = await collected(client, [STREAM, NEVER_WRITTEN])

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"stream": STREAM, **labels})

    assert value("relay_stream_length") == redis_sync.xlen(STREAM) == 32
    assert value("relay_stream_dlq_length") == 1
    assert value("relay_dedupe_ids") == redis_sync.zcard(dedupe_key(STREAM)) == 30
    for group in redis_sync.xinfo_groups(STREAM):
        name = group["name"].decode()
        assert value("relay_stream_group_lag", group=name) == group["lag"]
        assert value("relay_stream_group_pending", group=name) == group["pending"]
    # "slow" read 12 of 32 and acknowledged all but the first two (the hour-old one first).
    assert value("relay_stream_group_lag", group="slow") == 20
    assert value("relay_stream_group_pending", group="slow") == 2
    oldest = redis_sync.xpending(STREAM, "slow")["min"].decode()
    assert oldest == f"{an_hour_ago}-0"
    seconds, micros = redis_sync.time()
    age = seconds + micros / 1e6 - an_hour_ago / 1000
    reported = value("relay_stream_group_oldest_pending_seconds", group="slow")
    assert reported is not None and 3600 <= reported <= age
    assert value("relay_stream_group_oldest_pending_seconds", group="done") == 0
    assert registry.get_sample_value("relay_stream_length", {"stream": NEVER_WRITTEN}) == 0


async def test_a_lag_redis_cannot_tell_is_left_out_rather_than_guessed(
    client: Redis, redis_sync: redis.Redis
) -> None:
    ids = [redis_sync.xadd(STREAM, relay_fields(n)) for n in range(10)]
    redis_sync.xgroup_create(STREAM, "g", id="0")
    redis_sync.xdel(STREAM, ids[5])  # a tombstone ahead of the group: XINFO lag is nil
    assert redis_sync.xinfo_groups(STREAM)[0]["lag"] is None
    registry = await collected(client, [STREAM])
    labels = {"stream": STREAM, "group": "g"}
    assert registry.get_sample_value("relay_stream_group_lag", labels) is None
    assert registry.get_sample_value("relay_stream_group_pending", labels) == 0


async def test_a_failed_sample_clears_the_figures_instead_of_serving_stale_ones(
    client: Redis, redis_sync: redis.Redis
) -> None:
    redis_sync.xadd(STREAM, relay_fields(1))
    collector = StreamHealthCollector()
    await StreamHealthMonitor(client, lambda: [STREAM], collector).refresh()
    assert collector.streams
    dead = Redis(port=free_port(), socket_connect_timeout=1)
    try:
        await StreamHealthMonitor(dead, lambda: [STREAM], collector).refresh()
    finally:
        await dead.aclose()
    assert collector.streams == []


async def test_the_relay_serves_stream_health_and_its_build_on_metrics(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    redis_sync.xgroup_create(STREAM, "billing", id="0", mkstream=True)
    server = await start_relay(redis_url)

    async def sampled() -> str | None:  # the first sample is taken as the relay starts
        text = await relay_metrics(http, server)
        return text if "relay_stream_length{" in text else None

    text = await wait_for(sampled, what="the first stream sample on /metrics")
    assert f'relay_build_info{{version="{__version__}"}} 1.0' in text
    assert "relay_signing_keys 1.0" in text
    for stream in server.relay.streams():
        assert f'relay_stream_length{{stream="{stream}"}} 0.0' in text
    assert 'relay_stream_group_lag{group="billing",stream="anyformat:events"} 0.0' in text


async def test_a_group_given_the_newest_entry_has_no_lag_whatever_the_counter_says(
    client: Redis, redis_sync: redis.Redis
) -> None:
    # After an AOF reload or a failover Redis' entries-read counter can stay behind for
    # good (seen by bench/soak.py): XINFO then reports a caught-up group as lagging.
    for n in range(10):
        redis_sync.xadd(STREAM, relay_fields(n))
    redis_sync.xgroup_create(STREAM, "g", id="0")
    redis_sync.xreadgroup("g", "c1", {STREAM: ">"})
    redis_sync.execute_command("XGROUP", "SETID", STREAM, "g", "$", "ENTRIESREAD", "3")
    assert redis_sync.xinfo_groups(STREAM)[0]["lag"] == 7  # the counter, left behind
    labels = {"stream": STREAM, "group": "g"}
    registry = await collected(client, [STREAM])
    assert registry.get_sample_value("relay_stream_group_lag", labels) == 0

    redis_sync.xadd(STREAM, relay_fields("late"))  # now really behind: Redis' figure is reported
    registry = await collected(client, [STREAM])
    reported = registry.get_sample_value("relay_stream_group_lag", labels)
    assert reported == redis_sync.xinfo_groups(STREAM)[0]["lag"] > 0
