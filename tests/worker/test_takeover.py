"""Taking over a dead consumer's entries: all of them, promptly, and never a live one's."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis

from relay.worker import Event
from tests.support.entry_schemas import relay_fields
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, StartWorker, publish

pytestmark = pytest.mark.parametrize("backend_client", ["redis-server"], indirect=True)


async def consumer_pending(backend_client: Redis) -> dict[str, int]:
    summary = await backend_client.xpending(STREAM, GROUP)
    return {item["name"].decode(): int(item["pending"]) for item in summary["consumers"]}


async def test_2000_entries_of_a_dead_consumer_behind_live_ones_are_all_taken_over(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """Before: one batch of free slots per claim_idle/2 from the head of the pending list,
    about 2000 / 10 x 1 s here, and the live consumer's entries at the head starved the
    scan. Now the take-over walks the list with XAUTOCLAIM's cursor while there is work."""
    ids = await publish_many(backend_client, 2050)
    await backend_client.xgroup_create(STREAM, GROUP, id="0")
    release = asyncio.Event()
    handled: Counter[str] = Counter()

    async def busy(event: Event) -> None:
        await release.wait()
        handled[event.entry_id] += 1

    async def quick(event: Event) -> None:
        handled[event.entry_id] += 1

    # A live consumer holds the 50 oldest entries (heartbeated), a dead one the 2,000 after.
    await start_worker(busy, consumer="live", concurrency=50, claim_idle=2)
    await wait_for(lambda: _holds(backend_client, "live", 50), what="the live consumer holding 50")
    await backend_client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=2000)

    rescuer = await start_worker(quick, consumer="rescuer", claim_idle=2)
    try:
        await wait_for(
            lambda: len(handled) == 2000, what="the dead consumer's 2,000 handled", within=40
        )
        pending = await consumer_pending(backend_client)
        assert pending.get("dead", 0) == 0 and pending.get("live") == 50
        assert set(handled) == set(ids[50:])
        assert rescuer.worker.metrics.taken_over.labels(STREAM, GROUP)._value.get() == 2000
    finally:
        release.set()
    await wait_for(lambda: len(handled) == 2050, what="all 2,050 handled")
    assert set(handled) == set(ids) and set(handled.values()) == {1}  # each exactly once


async def test_the_hold_is_capped_and_the_read_loop_waits_at_the_cap(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish_many(backend_client, 1000)

    async def failing(event: Event) -> None:
        raise RuntimeError("downstream says no")

    from relay.worker import RetryPolicy

    slow_retries = RetryPolicy(max_attempts=5, backoff_base=60, backoff_max=60)
    worker = await start_worker(
        failing, consumer="w", concurrency=10, max_held=50, retry=slow_retries,
        outage_threshold=0,
    )  # fmt: skip
    await wait_for(lambda: _holds(backend_client, "w", 50), what="the worker holding 50")
    [group] = await backend_client.xinfo_groups(STREAM)
    assert group["entries-read"] == 50  # nothing read beyond the cap
    assert len(worker.worker.capacity.held) == 50
    await worker.stop()
    assert (await consumer_pending(backend_client))["w"] == 50  # left for a take-over, not lost


async def publish_many(backend_client: Redis, count: int) -> list[str]:
    async with backend_client.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(STREAM, relay_fields(n))
        return [entry_id.decode() for entry_id in await pipe.execute()]


async def _holds(backend_client: Redis, consumer: str, count: int) -> bool:
    return (await consumer_pending(backend_client)).get(consumer) == count


__all__ = ["publish"]
