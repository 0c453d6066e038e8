"""What a handler can say: Reject, Retry(after=…), a time limit, and shared resources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from relay.worker import Event, Reject, Retry, RetryPolicy
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, StartWorker, publish

DLQ = f"{STREAM}:dlq"
SLOW = RetryPolicy(max_attempts=5, backoff_base=60, backoff_max=60)
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)


async def pending(backend_client: Redis) -> int:
    return int((await backend_client.xpending(STREAM, GROUP))["pending"])


async def test_reject_sends_the_entry_to_the_dlq_at_once(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    [entry_id] = await publish(backend_client)
    calls: list[int] = []

    async def handler(event: Event) -> None:
        calls.append(event.attempt)
        raise Reject("customer deleted")

    worker = await start_worker(handler, retry=FAST)
    await wait_for(lambda: _length(backend_client, DLQ, 1), what="the rejected event dead-lettered")
    await wait_for(lambda: _no_pending(backend_client), what="nothing pending")
    [(_, dead)] = await backend_client.xrange(DLQ)
    assert (dead[b"error"], dead[b"attempts"]) == (b"Reject: customer deleted", b"1")
    assert dead[b"original_id"] == entry_id.encode()
    assert calls == [1]  # no further attempt
    assert worker.worker.metrics.rejected.labels(STREAM, GROUP)._value.get() == 1


async def test_retry_after_replaces_the_backoff(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """With a 60 s backoff configured, Retry(after=0.05) brings the second attempt now."""
    await publish(backend_client)
    calls: list[int] = []

    async def handler(event: Event) -> None:
        calls.append(event.attempt)
        if event.attempt == 1:
            raise Retry(after=0.05)

    await start_worker(handler, retry=SLOW)
    await wait_for(
        lambda: _no_pending_and(backend_client, lambda: calls == [1, 2]),
        what="two calls, nothing pending",
    )
    assert await backend_client.xlen(DLQ) == 0


async def test_retry_after_is_honoured_when_longer_than_the_backoff(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """Beside an entry retried on the short backoff, one that asked for an hour waits."""
    patient, hasty = await publish(backend_client, 2)
    calls: list[tuple[str, int]] = []

    async def handler(event: Event) -> None:
        calls.append((event.entry_id, event.attempt))
        if event.entry_id == patient:
            raise Retry(after=3600)
        if event.attempt == 1:
            raise RuntimeError("flaky")

    await start_worker(handler, retry=FAST)
    await wait_for(lambda: (hasty, 2) in calls, what="the hasty event's second call")

    async def only_patient_pending() -> bool:  # the hasty one's ack follows its call
        return await pending(backend_client) == 1

    await wait_for(only_patient_pending, what="only the patient event pending")
    assert (patient, 2) not in calls  # the patient entry, still held for its retry


async def test_retry_still_counts_as_an_attempt(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client)

    async def handler(event: Event) -> None:
        raise Retry(after=0, reason="rate limited")

    await start_worker(handler, retry=FAST)
    await wait_for(
        lambda: _length(backend_client, DLQ, 1), what="the rate-limited event dead-lettered"
    )
    [(_, dead)] = await backend_client.xrange(DLQ)
    assert (dead[b"error"], dead[b"attempts"]) == (b"Retry: rate limited", b"3")


async def test_a_handler_past_its_timeout_is_cancelled_and_retried(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client)
    cancelled: list[int] = []
    calls: list[int] = []

    async def handler(event: Event) -> None:
        calls.append(event.attempt)
        if event.attempt == 1:
            try:
                await asyncio.Event().wait()  # hangs for ever
            except asyncio.CancelledError:
                cancelled.append(event.attempt)
                raise

    worker = await start_worker(handler, retry=FAST, handler_timeout=0.2)
    await wait_for(
        lambda: _no_pending_and(backend_client, lambda: calls == [1, 2]),
        what="two calls, nothing pending",
    )
    assert cancelled == [1]
    assert worker.worker.metrics.failed.labels(STREAM, GROUP)._value.get() == 1
    assert await backend_client.xlen(DLQ) == 0


async def test_a_timeout_raised_by_the_handler_itself_is_an_ordinary_failure(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client)

    async def handler(event: Event) -> None:
        raise TimeoutError("the billing API did not answer")

    await start_worker(handler, retry=FAST, handler_timeout=30)
    await wait_for(
        lambda: _length(backend_client, DLQ, 1), what="the timed-out event dead-lettered"
    )
    [(_, dead)] = await backend_client.xrange(DLQ)
    assert dead[b"error"] == b"TimeoutError: the billing API did not answer"


async def test_the_lifespan_wraps_every_handler_call_once_per_worker(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client, 3)
    journal: list[str] = []
    started = asyncio.Event()
    release = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[dict[str, object]]:
        journal.append("open")
        yield {"session": "the shared session"}
        journal.append("close")

    async def handler(event: Event) -> None:
        journal.append(f"handle {event.state['session']}")
        if len(journal) == 4:  # the last entry: still running when the worker is stopped
            started.set()
            await release.wait()

    worker = await start_worker(handler, lifespan=lifespan, concurrency=1)
    await asyncio.wait_for(started.wait(), 10)
    worker.worker.stop()
    await wait_for(lambda: worker.worker.phase == "draining", what="the worker draining")
    assert journal[-1] == "handle the shared session"  # still open while a handler runs
    release.set()
    await asyncio.wait_for(worker.task, 10)
    assert journal == ["open", *["handle the shared session"] * 3, "close"]


async def _length(backend_client: Redis, stream: str, n: int) -> bool:
    return int(await backend_client.xlen(stream)) == n


async def _no_pending(backend_client: Redis) -> bool:
    return await pending(backend_client) == 0


async def _no_pending_and(backend_client: Redis, check: object) -> bool:
    assert callable(check)
    return bool(check()) and await pending(backend_client) == 0
