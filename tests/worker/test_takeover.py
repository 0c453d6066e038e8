"""Taking over a dead consumer's entries: all of them, promptly, and never a live one's."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis

from relay.worker import Event
from tests.support.entry_schemas import relay_fields
from tests.worker.conftest import GROUP, STREAM, StartWorker, eventually, publish

pytestmark = pytest.mark.parametrize("client", ["redis-server"], indirect=True)


async def consumer_pending(client: Redis) -> dict[str, int]:
    summary = await client.xpending(STREAM, GROUP)
    return {item["name"].decode(): int(item["pending"]) for item in summary["consumers"]}


async def test_2000_entries_of_a_dead_consumer_behind_live_ones_are_all_taken_over(
    client: Redis, start_worker: StartWorker
) -> None:
    """Before: one batch of free slots per claim_idle/2 from the head of the pending list,
    about 2000 / 10 x 1 s here, and the live consumer's entries at the head starved the
    scan. Now the take-over walks the list with XAUTOCLAIM's cursor while there is work."""
    ids = await publish_many(client, 2050)
    await client.xgroup_create(STREAM, GROUP, id="0")
    release = asyncio.Event()
    handled: Counter[str] = Counter()

    async def busy(event: Event) -> None:
        await release.wait()
        handled[event.entry_id] += 1

    async def quick(event: Event) -> None:
        handled[event.entry_id] += 1

    # A live consumer holds the 50 oldest entries (heartbeated), a dead one the 2,000 after.
    await start_worker(busy, consumer="live", concurrency=50, claim_idle=2)
    await eventually(lambda: _holds(client, "live", 50))
    await client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=2000)

    rescuer = await start_worker(quick, consumer="rescuer", claim_idle=2)
    try:
        await eventually(lambda: asyncio.sleep(0, len(handled) == 2000), within=40)
        pending = await consumer_pending(client)
        assert pending.get("dead", 0) == 0 and pending.get("live") == 50
        assert set(handled) == set(ids[50:])
        assert rescuer.worker.metrics.taken_over.labels(STREAM, GROUP)._value.get() == 2000
    finally:
        release.set()
    await eventually(lambda: asyncio.sleep(0, len(handled) == 2050))
    assert set(handled) == set(ids) and set(handled.values()) == {1}  # each exactly once


async def test_the_hold_is_capped_and_the_read_loop_waits_at_the_cap(
    client: Redis, start_worker: StartWorker
) -> None:
    await publish_many(client, 1000)

    async def failing(event: Event) -> None:
        raise RuntimeError("downstream says no")

    from relay.worker import RetryPolicy

    slow_retries = RetryPolicy(max_attempts=5, backoff_base=60, backoff_max=60)
    worker = await start_worker(
        failing, consumer="w", concurrency=10, max_held=50, retry=slow_retries,
        outage_threshold=0,
    )  # fmt: skip
    await eventually(lambda: _holds(client, "w", 50))
    [group] = await client.xinfo_groups(STREAM)
    assert group["entries-read"] == 50  # nothing read beyond the cap
    assert len(worker.worker.capacity.held) == 50
    await worker.stop()
    assert (await consumer_pending(client))["w"] == 50  # left for a take-over, not lost


async def publish_many(client: Redis, count: int) -> list[str]:
    async with client.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(STREAM, relay_fields(n))
        return [entry_id.decode() for entry_id in await pipe.execute()]


async def _holds(client: Redis, consumer: str, count: int) -> bool:
    return (await consumer_pending(client)).get(consumer) == count


__all__ = ["publish"]
