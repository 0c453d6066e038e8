"""The consumer group vanishing (NOGROUP): recreated where this worker had got to."""

from __future__ import annotations

from collections import Counter

from redis.asyncio import Redis

from relay.worker import Event, Worker
from tests.support.entry_schemas import relay_fields
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, StartWorker, publish


async def test_a_destroyed_group_is_recreated_after_the_last_entry_read_not_at_0(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """An operator's XGROUP DESTROY must not make the worker handle the stream again."""
    first = await publish(backend_client, 5)
    handled: Counter[str] = Counter()

    async def handler(event: Event) -> None:
        handled[event.entry_id] += 1

    running = await start_worker(handler)
    await wait_for(lambda: len(handled) == 5, what="the first five handled")
    await backend_client.xgroup_destroy(STREAM, GROUP)
    later = await publish(backend_client, 3)

    await wait_for(
        lambda: len(handled) == 8, what="all eight handled after the group was recreated"
    )
    assert set(handled) == {*first, *later}
    assert set(handled.values()) == {1}  # nothing handled twice
    assert await running.worker.readiness() is None  # the group is back


async def test_a_group_that_vanishes_before_anything_was_read_is_recreated_at_0(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.entry_id)

    running = await start_worker(handler, start_id="$")
    await wait_for(lambda: _ready(running.worker), what="the worker reading")
    # One transaction: the entries are in the stream before the worker can see the group
    # missing, so a group recreated at "$" would skip them.
    async with backend_client.pipeline(transaction=True) as tx:
        tx.xgroup_destroy(STREAM, GROUP)
        for n in range(3):
            tx.xadd(STREAM, relay_fields(n))
        _, *added = await tx.execute()
    ids = [entry_id.decode() for entry_id in added]
    await wait_for(
        lambda: sorted(handled) == sorted(ids), what="every entry of the transaction handled"
    )


async def test_readiness_says_why_not(backend_client: Redis, start_worker: StartWorker) -> None:
    async def handler(event: Event) -> None:
        pass

    running = await start_worker(handler)  # returns once the worker runs
    assert await running.worker.readiness() is None
    await running.stop()
    assert await running.worker.readiness() == "stopped"

    # The group checked on its own: a running worker recreates a missing group at once,
    # so this one is only marked running (no loops that could race the check).
    idle = Worker(backend_client, stream=STREAM, group=GROUP, handler=handler)
    assert await idle.readiness() == "starting"
    idle.phase = "running"
    assert await idle.readiness() is None
    await backend_client.xgroup_destroy(STREAM, GROUP)
    assert await idle.readiness() == "group_missing"


async def _ready(worker: object) -> bool:
    return await worker.readiness() is None  # type: ignore[attr-defined, no-any-return]
