"""Consumer-aware trimming, on a real redis-server: targets are met only below what every
consumer group still needs; only the hard cap drops needed entries, counted and logged."""

from __future__ import annotations

import asyncio
import time

import structlog
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from relay.streams.trim import Retention, Trimmer
from relay.streams.writer import FanoutWriter
from tests.support.entry_schemas import relay_entry, relay_fields

STREAM = "anyformat:events"
GROUP = "billing"


async def fill(text_client: Redis, count: int, stream: str = STREAM) -> list[str]:
    async with text_client.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(stream, relay_fields(n))
        return [str(entry_id) for entry_id in await pipe.execute()]


def trimmer(text_client: Redis, maxlen: int, **options: object) -> Trimmer:
    budget = options.pop("budget", 2000)
    retention = Retention(maxlen=maxlen, **options)  # type: ignore[arg-type]
    return Trimmer(text_client, retention, lambda: [STREAM], budget=budget)  # type: ignore[arg-type]


async def ids(text_client: Redis, stream: str = STREAM) -> list[str]:
    return [entry_id for entry_id, _ in await text_client.xrange(stream)]


async def read(text_client: Redis, count: int, group: str = GROUP) -> list[str]:
    reply = await text_client.xreadgroup(group, "c1", {STREAM: ">"}, count=count)
    return [entry_id for entry_id, _ in reply[0][1]] if reply else []


async def test_a_stream_without_groups_is_trimmed_to_the_target(text_client: Redis) -> None:
    written = await fill(text_client, 500)
    result = await trimmer(text_client, 100).trim(STREAM)
    assert (result.removed, result.dropped, result.floor) == (400, 0, None)
    assert await ids(text_client) == written[400:]


async def test_a_group_lagging_five_times_the_target_loses_nothing(text_client: Redis) -> None:
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    written = await fill(text_client, 500)
    trim = trimmer(text_client, 100)
    assert (await trim.trim(STREAM)).removed == 0
    seen: list[str] = []
    while batch := await read(text_client, 60):
        seen += batch
        await trim.trim(STREAM)  # read but not acknowledged: still needed
        assert await ids(text_client) == written
    assert seen == written
    await text_client.xack(STREAM, GROUP, *written[:-30])
    await trim.trim(STREAM)
    assert await ids(text_client) == written[400:]  # the target is met; the unacked 30 are in it
    await text_client.xack(STREAM, GROUP, *written[-30:])
    await trim.trim(STREAM)
    assert await ids(text_client) == written[400:]


async def test_an_old_pending_entry_holds_the_floor_and_stays_readable(text_client: Redis) -> None:
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    written = await fill(text_client, 500)
    await read(text_client, 500)
    stuck = written[50]
    await text_client.xack(STREAM, GROUP, *(i for i in written if i != stuck))
    trim = trimmer(text_client, 100)
    result = await trim.trim(STREAM)
    assert result.floor == stuck
    assert await ids(text_client) == written[50:]
    [(claimed_id, fields)] = await text_client.xclaim(STREAM, GROUP, "c2", 0, [stuck])
    assert (claimed_id, fields["id"]) == (stuck, "msg_50")
    await text_client.xack(STREAM, GROUP, stuck)
    await trim.trim(STREAM)
    assert await ids(text_client) == written[400:]


async def test_the_slowest_group_sets_the_floor(text_client: Redis) -> None:
    await text_client.xgroup_create(STREAM, "fast", id="0", mkstream=True)
    await text_client.xgroup_create(STREAM, "slow", id="0")
    written = await fill(text_client, 500)
    await text_client.xack(STREAM, "fast", *await read(text_client, 500, "fast"))
    await text_client.xack(STREAM, "slow", *await read(text_client, 200, "slow"))
    result = await trimmer(text_client, 100).trim(STREAM)
    # Just below the floor goes; the floor (the entry after the last one read) stays.
    assert result.floor == f"{written[199].split('-')[0]}-{int(written[199].split('-')[1]) + 1}"
    assert await ids(text_client) == written[200:]


async def test_a_group_created_at_the_end_needs_nothing_before_it(text_client: Redis) -> None:
    written = await fill(text_client, 300)
    await text_client.xgroup_create(STREAM, GROUP, id="$")
    await trimmer(text_client, 100).trim(STREAM)
    assert await ids(text_client) == written[200:]


async def test_a_long_catch_up_is_trimmed_in_bounded_steps_until_the_target(
    text_client: Redis,
) -> None:
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    written = await fill(text_client, 5000)
    await read(text_client, 5000)
    await text_client.xack(STREAM, GROUP, *written[:4500])  # 4500 onwards still pending
    result = await trimmer(text_client, 10, budget=100).trim(STREAM)
    assert (result.removed, result.floor) == (4500, written[4500])
    assert await ids(text_client) == written[4500:]


async def test_marks_left_by_earlier_passes_cut_without_a_scan_and_respect_the_floor(
    text_client: Redis,
) -> None:
    """A group keeping up always holds its newest entries pending; the cut then comes from
    the position marks of earlier passes (one pass's entries above the target at most)."""
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    trim = trimmer(text_client, 100)
    written = await fill(text_client, 200)
    await trim.trim(STREAM)  # the first pass marks position 200
    written += await fill(text_client, 200)
    await read(text_client, 400)
    await text_client.xack(STREAM, GROUP, *written[:150])  # the floor: entry 150
    await trim.trim(STREAM)
    assert await ids(text_client) == written[150:]
    await text_client.xack(STREAM, GROUP, *written[150:390])  # the newest 10 still pending
    result = await trim.trim(STREAM)
    assert result.floor == written[390]
    assert await ids(text_client) == written[200:]  # up to the mark at 200; the target is 100
    await text_client.xack(STREAM, GROUP, *written[390:])  # all acknowledged: exactly the target
    await trim.trim(STREAM)
    assert await ids(text_client) == written[300:]


async def test_a_big_removal_is_split_into_calls_that_each_hold_redis_briefly(
    text_client: Redis,
) -> None:
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    written = await fill(text_client, 6000)
    await text_client.xgroup_setid(STREAM, GROUP, "$")  # the group caught up at once
    calls_before = await evalsha_calls(text_client)
    result = await trimmer(text_client, 10, budget=10).trim(STREAM)  # <= 1000 removed a call
    assert result.removed == 5990
    assert await ids(text_client) == written[5990:]
    assert await evalsha_calls(text_client) - calls_before >= 6


async def evalsha_calls(text_client: Redis) -> int:
    stats = await text_client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_max_age_trims_old_entries_with_the_same_protection(text_client: Redis) -> None:
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    now_ms = int(time.time() * 1000)
    # 60 s old at most is kept: one entry just past the edge, one just inside it.
    old = [await text_client.xadd(STREAM, relay_fields("old"), id=f"{now_ms - 3_600_000 + n}-1")
           for n in range(20)]  # fmt: skip
    edge_out = await text_client.xadd(STREAM, relay_fields("61s"), id=f"{now_ms - 61_000}-1")
    edge_in = await text_client.xadd(STREAM, relay_fields("58s"), id=f"{now_ms - 58_000}-1")
    fresh = await fill(text_client, 20)
    trim = trimmer(text_client, 1000, max_age_seconds=60)
    await text_client.xack(STREAM, GROUP, *await read(text_client, 10))  # the group needs old[10:]
    await trim.trim(STREAM)
    assert await ids(text_client) == [*old[10:], edge_out, edge_in, *fresh]
    await text_client.xack(STREAM, GROUP, *await read(text_client, 100))
    await trim.trim(STREAM)
    assert await ids(text_client) == [edge_in, *fresh]


async def test_the_hard_cap_drops_needed_entries_and_counts_and_logs_each(
    text_client: Redis,
) -> None:
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    written = await fill(text_client, 500)
    registry = CollectorRegistry()
    dropped = Counter("dropped", "", ["stream"], registry=registry)
    trim = Trimmer(text_client, Retention(maxlen=100, hard_maxlen=300), lambda: [STREAM],
                   dropped=dropped)  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        result = await trim.trim(STREAM)
    assert (result.removed, result.dropped) == (200, 200)
    assert await ids(text_client) == written[200:]
    assert registry.get_sample_value("dropped_total", {"stream": STREAM}) == 200
    [line] = [line for line in logs if line["event"] == "stream_trimmed_unread"]
    assert (line["log_level"], line["stream"], line["dropped"]) == ("error", STREAM, 200)


async def test_the_hard_cap_counts_nothing_when_the_safe_trim_suffices(text_client: Redis) -> None:
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    written = await fill(text_client, 500)
    await text_client.xack(STREAM, GROUP, *await read(text_client, 450))
    result = await trimmer(text_client, 100, hard_maxlen=100).trim(STREAM)
    assert (result.removed, result.dropped) == (400, 0)
    assert await ids(text_client) == written[400:]


async def test_nothing_is_lost_or_doubled_while_appends_reads_and_trims_interleave(
    text_client: Redis, redis_url: str
) -> None:
    """The real fan-out appends, a consumer reads and acknowledges in small batches, and the
    trimmer runs as often as it can with a target far below the backlog."""
    await text_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    raw = Redis.from_url(redis_url)
    writer = FanoutWriter(raw, dedupe_ttl=60)
    trim = trimmer(text_client, 5, budget=7)
    total = 2000
    appended, consumed = asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def produce() -> None:
        # Bursts of 100 concurrent deliveries: the backlog runs far past the target.
        for start in range(0, total, 100):
            entries = [relay_entry(f"m{n}")
                       for n in range(start, start + 100)]  # fmt: skip
            await asyncio.gather(*(writer.write(entry, [STREAM]) for entry in entries))
        appended.set()

    async def consume() -> None:
        while True:
            done = appended.is_set()  # checked before the read: nothing is added after it
            reply = await text_client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=13, block=100)
            if not reply and done:
                consumed.set()
                return
            for _, entries in reply:
                seen.extend(fields["id"] for _, fields in entries)
                await text_client.xack(STREAM, GROUP, *(entry_id for entry_id, _ in entries))

    async def keep_trimming() -> None:
        while not consumed.is_set():
            await trim.trim(STREAM)

    try:
        await asyncio.wait_for(asyncio.gather(produce(), consume(), keep_trimming()), 60)
    finally:
        await raw.aclose()
    assert seen == [f"m{n}" for n in range(total)]
    await trim.trim(STREAM)
    assert await text_client.xlen(STREAM) == 5
