"""The consumer group vanishing (NOGROUP): recreated where this worker had got to."""

from __future__ import annotations

import asyncio
from collections import Counter

from redis.asyncio import Redis

from relay.worker import Event, Worker
from tests.support.entry_schemas import relay_fields
from tests.worker.conftest import GROUP, STREAM, StartWorker, eventually, publish


async def test_a_destroyed_group_is_recreated_after_the_last_entry_read_not_at_0(
    client: Redis, start_worker: StartWorker
) -> None:
    """An operator's XGROUP DESTROY must not make the worker handle the stream again."""
    first = await publish(client, 5)
    handled: Counter[str] = Counter()

    async def handler(event: Event) -> None:
        handled[event.entry_id] += 1

    running = await start_worker(handler)
    await eventually(lambda: asyncio.sleep(0, len(handled) == 5))
    await client.xgroup_destroy(STREAM, GROUP)
    later = await publish(client, 3)

    await eventually(lambda: asyncio.sleep(0, len(handled) == 8))
    assert set(handled) == {*first, *later}
    assert set(handled.values()) == {1}  # nothing handled twice
    assert await running.worker.readiness() is None  # the group is back


async def test_a_group_that_vanishes_before_anything_was_read_is_recreated_at_0(
    client: Redis, start_worker: StartWorker
) -> None:
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.entry_id)

    running = await start_worker(handler, start_id="$")
    await eventually(lambda: _ready(running.worker))
    # One transaction: the entries are in the stream before the worker can see the group
    # missing, so a group recreated at "$" would skip them.
    async with client.pipeline(transaction=True) as tx:
        tx.xgroup_destroy(STREAM, GROUP)
        for n in range(3):
            tx.xadd(STREAM, relay_fields(n))
        _, *added = await tx.execute()
    ids = [entry_id.decode() for entry_id in added]
    await eventually(lambda: asyncio.sleep(0, sorted(handled) == sorted(ids)))


async def test_readiness_says_why_not(client: Redis, start_worker: StartWorker) -> None:
    async def handler(event: Event) -> None:
        pass

    running = await start_worker(handler)  # returns once the worker runs
    assert await running.worker.readiness() is None
    await running.stop()
    assert await running.worker.readiness() == "stopped"

    # The group checked on its own: a running worker recreates a missing group at once,
    # so this one is only marked running (no loops that could race the check).
    idle = Worker(client, stream=STREAM, group=GROUP, handler=handler)
    assert await idle.readiness() == "starting"
    idle.phase = "running"
    assert await idle.readiness() is None
    await client.xgroup_destroy(STREAM, GROUP)
    assert await idle.readiness() == "group_missing"


async def _ready(worker: object) -> bool:
    return await worker.readiness() is None  # type: ignore[attr-defined, no-any-return]
