"""A downstream outage pauses the worker instead of burning attempts; a bad entry among
good ones still reaches the dead-letter stream. The edge: ``outage_threshold`` different
entries failing in a row."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis

from relay.worker import Event, RetryPolicy
from tests.worker.conftest import GROUP, STREAM, StartWorker, eventually, publish

pytestmark = pytest.mark.parametrize("client", ["redis-server"], indirect=True)
DLQ = f"{STREAM}:dlq"
# Three attempts within a fraction of a second: without the pause, an outage of a few
# seconds would dead-letter every entry.
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
THRESHOLD = 5


async def test_an_outage_longer_than_every_retry_sends_nothing_to_the_dlq(
    client: Redis, start_worker: StartWorker
) -> None:
    ids = await publish(client, 200)
    down = True
    calls_while_down = 0
    succeeded: Counter[str] = Counter()

    async def handler(event: Event) -> None:
        nonlocal calls_while_down
        if down:
            calls_while_down += 1
            raise ConnectionError("billing API unreachable")
        succeeded[event.entry_id] += 1

    running = await start_worker(
        handler, retry=FAST, outage_threshold=THRESHOLD, outage_probe_interval=0.05
    )
    worker = running.worker
    await eventually(lambda: asyncio.sleep(0, worker.breaker.is_open))
    assert worker.metrics.paused.labels(STREAM, GROUP, "outage")._value.get() == 1
    # The outage lasts 40 probes: many times the three attempts' whole backoff.
    await eventually(lambda: asyncio.sleep(0, worker.breaker.probes >= 40), within=20)
    assert await client.xlen(DLQ) == 0
    assert calls_while_down < 200  # paused: the backlog was not run against the outage
    down = False

    await eventually(lambda: asyncio.sleep(0, len(succeeded) == 200), within=20)
    await eventually(lambda: _no_pending(client))
    assert set(succeeded) == set(ids) and set(succeeded.values()) == {1}  # each once
    assert await client.xlen(DLQ) == 0
    assert not worker.breaker.is_open and worker.breaker.outages == 1
    assert worker.metrics.paused.labels(STREAM, GROUP, "outage")._value.get() == 0


async def test_bad_entries_just_under_the_threshold_are_dead_lettered_among_good_ones(
    client: Redis, start_worker: StartWorker
) -> None:
    """THRESHOLD - 1 poison entries never look like an outage, whatever their order."""
    ids = await publish(client, 40)
    poison = set(ids[3 : 3 + THRESHOLD - 1])

    async def handler(event: Event) -> None:
        if event.entry_id in poison:
            raise ValueError("cannot bill this one")

    running = await start_worker(
        handler, retry=FAST, outage_threshold=THRESHOLD, outage_probe_interval=0.05,
        concurrency=2,
    )  # fmt: skip
    await eventually(lambda: _length(client, DLQ, len(poison)))
    await eventually(lambda: _no_pending(client))
    dead = {fields[b"original_id"].decode(): fields for _, fields in await client.xrange(DLQ)}
    assert set(dead) == poison
    assert {fields[b"attempts"] for fields in dead.values()} == {b"3"}
    assert running.worker.breaker.outages == 0


async def test_threshold_different_entries_failing_in_a_row_pause_without_dead_letters(
    client: Redis, start_worker: StartWorker
) -> None:
    """The other side of the edge: THRESHOLD failing entries and nothing else succeeding
    is indistinguishable from an outage, so they wait (alert on relay_worker_paused)."""
    await publish(client, THRESHOLD)

    async def handler(event: Event) -> None:
        raise ValueError("fails for every entry")

    running = await start_worker(
        handler, retry=FAST, outage_threshold=THRESHOLD, outage_probe_interval=0.05
    )
    worker = running.worker
    await eventually(lambda: asyncio.sleep(0, worker.breaker.probes >= 3 * THRESHOLD))
    assert worker.breaker.is_open
    assert await client.xlen(DLQ) == 0
    assert int((await client.xpending(STREAM, GROUP))["pending"]) == THRESHOLD


async def _length(client: Redis, stream: str, n: int) -> bool:
    return int(await client.xlen(stream)) == n


async def _no_pending(client: Redis) -> bool:
    return int((await client.xpending(STREAM, GROUP))["pending"]) == 0
