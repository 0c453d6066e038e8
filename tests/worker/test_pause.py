"""An operator's pause: every worker of the group stops taking entries, finishes what it
holds, and takes up again on resume, each entry handled once; in relay_worker_paused with
reason="operator"."""

from __future__ import annotations

import asyncio
from collections import Counter

from redis.asyncio import Redis

from relay.worker import Event
from relay.worker.pause import is_paused, set_paused
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, Running, StartWorker, publish


def operator_gauge(running: Running) -> float:
    gauge = running.worker.metrics.paused.labels(STREAM, GROUP, "operator")
    return float(gauge._value.get())


def parked(running: Running) -> bool:
    """Both intake loops (reading, taking over) wait for a resume."""
    return running.worker.pause.waiting == 2


async def lag(client: Redis) -> int:
    [group] = await client.xinfo_groups(STREAM)
    return int(group["lag"])


async def test_a_paused_group_finishes_what_it_holds_takes_nothing_and_resumes(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def handler(event: Event) -> None:
        if not handled and not gate.is_set():
            started.set()
            await gate.wait()  # held across the pause
        handled.append(event.id)

    await publish(backend_client, 1)
    running = await start_worker(handler, claim_idle=1.0)
    await asyncio.wait_for(started.wait(), 10)

    assert await set_paused(backend_client, STREAM, GROUP, True)
    assert not await set_paused(backend_client, STREAM, GROUP, True)  # already paused
    await wait_for(lambda: parked(running), what="both intake loops parked")
    assert operator_gauge(running) == 1
    assert running.worker.metrics.paused.labels(STREAM, GROUP, "outage")._value.get() == 0
    await publish(backend_client, 3)
    gate.set()  # the held entry finishes and is acknowledged while paused
    await wait_for(lambda: _pending_is(backend_client, 0), what="nothing pending")
    assert len(handled) == 1 and parked(running)
    assert await lag(backend_client) == 3  # the new entries were not taken

    assert await set_paused(backend_client, STREAM, GROUP, False)
    await wait_for(lambda: len(handled) == 4, what="every entry handled")
    assert set(Counter(handled).values()) == {1}
    await wait_for(lambda: _pending_is(backend_client, 0), what="nothing pending")
    assert operator_gauge(running) == 0 and not await is_paused(backend_client, STREAM, GROUP)


async def test_every_worker_of_the_group_honours_it(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.id)

    await set_paused(backend_client, STREAM, GROUP, True)
    workers = [await start_worker(handler, consumer=f"c{n}", claim_idle=1.0) for n in range(2)]
    await wait_for(lambda: all(parked(w) for w in workers), what="every worker parked")
    await publish(backend_client, 20)
    assert (
        await lag(backend_client) == 20 and handled == []
    )  # a worker started paused takes nothing
    await set_paused(backend_client, STREAM, GROUP, False)
    await wait_for(lambda: len(handled) == 20, what="every entry handled")
    assert set(Counter(handled).values()) == {1}
    # Another group of the stream was never paused.
    assert not await is_paused(backend_client, STREAM, "audit")


async def _pending_is(client: Redis, count: int) -> bool:
    return int((await client.xpending(STREAM, GROUP))["pending"]) == count
