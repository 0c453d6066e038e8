"""A downstream outage pauses the worker instead of burning attempts; a bad entry among
good ones still reaches the dead-letter stream. The edge: ``outage_threshold`` different
entries failing in a row."""

from __future__ import annotations

from collections import Counter

import pytest
from redis.asyncio import Redis

from relay.worker import Event, RetryPolicy
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, StartWorker, publish

pytestmark = pytest.mark.parametrize("backend_client", ["redis-server"], indirect=True)
DLQ = f"{STREAM}:dlq"
# Three attempts within a fraction of a second: without the pause, an outage of a few
# seconds would dead-letter every entry.
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05)
THRESHOLD = 5


async def test_an_outage_longer_than_every_retry_sends_nothing_to_the_dlq(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    ids = await publish(backend_client, 200)
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
    await wait_for(lambda: worker.breaker.is_open, what="the breaker open")
    assert worker.metrics.paused.labels(STREAM, GROUP, "outage")._value.get() == 1
    # The outage lasts 40 probes: many times the three attempts' whole backoff.
    await wait_for(
        lambda: worker.breaker.probes >= 40, what="40 probes during the outage", within=20
    )
    assert await backend_client.xlen(DLQ) == 0
    assert calls_while_down < 200  # paused: the backlog was not run against the outage
    down = False

    await wait_for(
        lambda: len(succeeded) == 200, what="all 200 succeeded after the outage", within=20
    )
    await wait_for(lambda: _no_pending(backend_client), what="nothing pending")
    assert set(succeeded) == set(ids) and set(succeeded.values()) == {1}  # each once
    assert await backend_client.xlen(DLQ) == 0
    assert not worker.breaker.is_open and worker.breaker.outages == 1
    assert worker.metrics.paused.labels(STREAM, GROUP, "outage")._value.get() == 0


async def test_bad_entries_just_under_the_threshold_are_dead_lettered_among_good_ones(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """THRESHOLD - 1 poison entries never look like an outage, whatever their order."""
    ids = await publish(backend_client, 40)
    poison = set(ids[3 : 3 + THRESHOLD - 1])

    async def handler(event: Event) -> None:
        if event.entry_id in poison:
            raise ValueError("cannot bill this one")

    running = await start_worker(
        handler, retry=FAST, outage_threshold=THRESHOLD, outage_probe_interval=0.05,
        concurrency=2,
    )  # fmt: skip
    await wait_for(
        lambda: _length(backend_client, DLQ, len(poison)), what="every poison event dead-lettered"
    )
    await wait_for(lambda: _no_pending(backend_client), what="nothing pending")
    dead = {
        fields[b"original_id"].decode(): fields for _, fields in await backend_client.xrange(DLQ)
    }
    assert set(dead) == poison
    assert {fields[b"attempts"] for fields in dead.values()} == {b"3"}
    assert running.worker.breaker.outages == 0


async def test_threshold_different_entries_failing_in_a_row_pause_without_dead_letters(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """The other side of the edge: THRESHOLD failing entries and nothing else succeeding
    is indistinguishable from an outage, so they wait (alert on relay_worker_paused)."""
    await publish(backend_client, THRESHOLD)

    async def handler(event: Event) -> None:
        raise ValueError("fails for every entry")

    running = await start_worker(
        handler, retry=FAST, outage_threshold=THRESHOLD, outage_probe_interval=0.05
    )
    worker = running.worker
    await wait_for(
        lambda: worker.breaker.probes >= 3 * THRESHOLD, what="three thresholds of probes"
    )
    assert worker.breaker.is_open
    assert await backend_client.xlen(DLQ) == 0
    assert int((await backend_client.xpending(STREAM, GROUP))["pending"]) == THRESHOLD


async def _length(backend_client: Redis, stream: str, n: int) -> bool:
    return int(await backend_client.xlen(stream)) == n


async def _no_pending(backend_client: Redis) -> bool:
    return int((await backend_client.xpending(STREAM, GROUP))["pending"]) == 0
