"""Entries of the group gone before their handler succeeded (trimmed, deleted) are counted
in relay_worker_entries_lost_total and logged as ``entry_lost``, then acknowledged: never
silently, and never looped on."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from relay.worker import Event, RetryPolicy
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, StartWorker, publish

DLQ = f"{STREAM}:dlq"
FAST = RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_max=0.05)


def lost(running: object) -> float:
    return float(running.worker.metrics.lost.labels(STREAM, GROUP)._value.get())  # type: ignore[attr-defined]


async def pending(backend_client: Redis) -> int:
    return int((await backend_client.xpending(STREAM, GROUP))["pending"])


async def test_an_entry_deleted_while_pending_on_a_dead_consumer_is_counted_lost(
    backend_client: Redis, start_worker: StartWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    gone, kept = await publish(backend_client, 2)
    await backend_client.xgroup_create(STREAM, GROUP, id="0")
    await backend_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=2)
    await backend_client.xdel(STREAM, gone)
    handled: list[str] = []

    async def handler(event: Event) -> None:
        handled.append(event.entry_id)

    running = await start_worker(handler, claim_idle=0.2, retry=FAST)
    await wait_for(
        lambda: lost(running) == 1 and handled == [kept], what="one lost, the kept one handled"
    )
    await wait_for(lambda: _none_pending(backend_client), what="nothing pending")
    assert await backend_client.xlen(DLQ) == 0
    assert "entry_lost" in capsys.readouterr().out


async def test_an_entry_deleted_while_waiting_for_its_retry_is_counted_lost(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client)
    calls: list[int] = []

    async def handler(event: Event) -> None:
        calls.append(event.attempt)
        await backend_client.xdel(STREAM, event.entry_id)  # trimmed away under our feet
        raise RuntimeError("downstream hiccup")

    running = await start_worker(handler, retry=FAST)
    await wait_for(lambda: lost(running) == 1, what="one lost")
    await wait_for(lambda: _none_pending(backend_client), what="nothing pending")
    assert calls == [1]  # never retried, never looped on
    assert await backend_client.xlen(DLQ) == 0


@pytest.mark.parametrize("succeeds", [True, False])
async def test_an_entry_deleted_while_its_handler_runs_is_lost_only_if_the_handler_fails(
    backend_client: Redis, start_worker: StartWorker, succeeds: bool
) -> None:
    """The heartbeat finds the message gone (XCLAIM drops it from the pending list); a
    handler that then succeeds has done its job, one that fails has lost the entry."""
    await publish(backend_client)

    async def handler(event: Event) -> None:
        await backend_client.xdel(STREAM, event.entry_id)
        await wait_for(
            lambda: _none_pending(backend_client), what="the heartbeat noticing the deleted entry"
        )  # the heartbeat noticed
        if not succeeds:
            raise RuntimeError("downstream hiccup")

    running = await start_worker(handler, claim_idle=0.3, retry=FAST)
    metrics = running.worker.metrics
    outcome = metrics.handled if succeeds else metrics.lost
    await wait_for(
        lambda: outcome.labels(STREAM, GROUP)._value.get() == 1, what="the outcome counted"
    )
    assert lost(running) == (0 if succeeds else 1)
    assert await backend_client.xlen(DLQ) == 0


async def _none_pending(backend_client: Redis) -> bool:
    return await pending(backend_client) == 0
