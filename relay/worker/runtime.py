"""The worker: reads a stream through a consumer group and runs a handler for each entry.

An entry is acknowledged only after its handler returned. A failed attempt is retried
after a capped exponential backoff; the attempt number is Redis's delivery counter, so it
survives restarts. Entries of a consumer that died are taken over after ``claim_idle``;
entries this consumer still works on are kept claimed by heartbeats. After the last
attempt the entry moves to ``{stream}:dlq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.observability import WorkerMetrics
from relay.worker.claims import Claims
from relay.worker.deadletter import dead_letter
from relay.worker.event import Event, MalformedEntry, decode_fields, parse_entry
from relay.worker.retry import RetryPolicy

Handler = Callable[[Event], Awaitable[Any]]
TRANSIENT = (RedisConnectionError, RedisTimeoutError)
SHORT_CLAIM_IDLE = 30.0

log = structlog.get_logger("relay.worker")


class Slots:
    """Handler slots: at most ``count`` handlers run at once."""

    def __init__(self, count: int) -> None:
        self.free = count
        self._freed = asyncio.Event()

    async def wait_free(self) -> int:
        """Wait until a slot is free; how many are."""
        while self.free == 0:
            self._freed.clear()
            await self._freed.wait()
        return self.free

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        await self.wait_free()
        self.free -= 1
        try:
            yield
        finally:
            self.free += 1
            self._freed.set()


class AckBatcher:
    """Coalesces the acks of handlers that finish together into one ``XACK``.

    Each caller still returns only once its own entry is acknowledged (or sees the error).
    """

    def __init__(self, redis: Redis, stream: str, group: str) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group
        self._batch: list[str] = []
        self._done: asyncio.Future[None] | None = None

    async def ack(self, entry_id: str) -> None:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._flush)
        self._batch.append(entry_id)
        await asyncio.shield(self._done)

    def _flush(self) -> None:
        batch, done = self._batch, self._done
        self._batch, self._done = [], None
        assert done is not None
        task = asyncio.ensure_future(self._redis.xack(self._stream, self._group, *batch))

        def settle(finished: asyncio.Future[Any]) -> None:
            if finished.cancelled():
                done.cancel()
            elif (exc := finished.exception()) is not None:
                done.set_exception(exc)
            else:
                done.set_result(None)

        task.add_done_callback(settle)


def group_gone(exc: ResponseError) -> bool:
    """The group (or its whole stream) vanished: deleted, or Redis lost its data."""
    text = str(exc)
    return "NOGROUP" in text or text.startswith("UNBLOCKED")


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(
        self,
        redis: Redis,
        *,
        stream: str,
        group: str,
        handler: Handler,
        consumer: str | None = None,
        concurrency: int = 10,
        retry: RetryPolicy | None = None,
        claim_idle: float = 60.0,
        shutdown_timeout: float = 30.0,
        start_id: str = "$",
        block: float = 2.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if claim_idle <= 0 or shutdown_timeout < 0 or block <= 0:
            raise ValueError("claim_idle and block must be positive, shutdown_timeout >= 0")
        self.redis = redis
        self.stream = stream
        self.group = group
        self.handler = handler
        self.consumer = consumer or default_consumer_name()
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.claim_idle = claim_idle
        self.shutdown_timeout = shutdown_timeout
        self.start_id = start_id
        self.block_ms = int(block * 1000)
        self.metrics = metrics or WorkerMetrics()
        self._labels = (stream, group)
        self._claims = Claims(redis, stream, group, self.consumer)
        self._acks = AckBatcher(redis, stream, group)
        self._slots = Slots(concurrency)
        self._held: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._log = log.bind(stream=stream, group=group, consumer=self.consumer)

    # --- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop reading; ``run`` then lets handlers in flight finish and returns."""
        self._stopping.set()

    async def run(self) -> None:
        if self.claim_idle < SHORT_CLAIM_IDLE:
            self._log.warning(
                "claim_idle_short",
                claim_idle_s=self.claim_idle,
                advice="entries are kept claimed while their handler runs, but a worker "
                "stalled longer than claim_idle loses them to another consumer, which "
                "runs them again",
            )
        await self._ensure_group(self.start_id)
        self._log.info("worker_started", concurrency=self.concurrency)
        loops = [
            asyncio.create_task(self._read_loop(), name="read"),
            asyncio.create_task(self._claim_loop(), name="claim"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
        ]
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([stopping, *loops], return_when=asyncio.FIRST_COMPLETED)
        for task in loops:
            task.cancel()
        stopping.cancel()
        results = await asyncio.gather(*loops, stopping, return_exceptions=True)
        await self._drain()
        for result in results:
            if isinstance(result, Exception):
                raise result  # a loop died of something unexpected: say so, non-zero
        self._log.info("worker_stopped")

    async def _drain(self) -> None:
        self._stopping.set()
        tasks = set(self._tasks)
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
            for task in unfinished:
                task.cancel()  # left pending: another consumer takes it over
            await asyncio.gather(*tasks, return_exceptions=True)
            if unfinished:
                self._log.warning("handlers_cancelled_at_shutdown", count=len(unfinished))

    # --- loops -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            # Read no more than can start now: entries wait in Redis, not in this process.
            free = await self._slots.wait_free()
            try:
                reply: Any = await self.redis.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"},
                    count=free, block=self.block_ms,
                )  # fmt: skip
                failures = 0
            except ResponseError as exc:
                if not group_gone(exc):
                    raise
                await self._recreate_group()
                continue
            except TRANSIENT as exc:
                failures += 1
                await self._pause_after_redis_error("read", exc, failures)
                continue
            entries: list[tuple[bytes, dict[bytes, bytes]]] = reply[0][1] if reply else []
            for entry_id, fields in entries:
                self._spawn(entry_id.decode(), fields, attempt=1)

    async def _claim_loop(self) -> None:
        interval = max(min(self.claim_idle / 2, 30.0), 0.05)
        while not await self._sleep(interval):
            if not self._slots.free:
                continue
            try:
                claimed = await self._claims.take_over(
                    int(self.claim_idle * 1000), self._slots.free
                )
            except ResponseError as exc:
                if not group_gone(exc):
                    raise
                await self._recreate_group()
                continue
            except TRANSIENT:
                continue
            for entry_id, fields, deliveries in claimed:
                self.metrics.taken_over.labels(*self._labels).inc()
                self._log.info("entry_taken_over", entry_id=entry_id, attempt=deliveries)
                self._spawn(entry_id, fields, attempt=deliveries)

    async def _heartbeat_loop(self) -> None:
        interval = max(self.claim_idle / 3, 0.05)
        while not await self._sleep(interval):
            held = sorted(self._held)
            try:
                lost = await self._claims.keep(held)
            except TRANSIENT:
                continue
            except ResponseError as exc:
                if group_gone(exc):
                    continue  # the read loop recreates it
                raise
            for entry_id in lost:
                self._log.warning("entry_no_longer_ours", entry_id=entry_id)

    # --- one entry ---------------------------------------------------------------------

    def _spawn(self, entry_id: str, raw: Mapping[bytes, bytes], attempt: int) -> None:
        self._held.add(entry_id)
        task = asyncio.create_task(self._process(entry_id, decode_fields(raw), attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, entry_id: str, fields: dict[str, bytes], attempt: int) -> None:
        try:
            if attempt > self.retry.max_attempts:
                await self._dead_letter(
                    entry_id, fields, attempt - 1,
                    "no outcome after the last attempt: the consumer handling it died or "
                    "was stopped before its handler returned",
                )  # fmt: skip
                return
            try:
                event = parse_entry(self.stream, entry_id, fields, attempt)
            except MalformedEntry as exc:
                await self._dead_letter(entry_id, fields, attempt, f"malformed entry: {exc}")
                return
            while True:
                async with self._slots.hold():
                    error = await self._attempt(event)
                if error is None:
                    await self._redis_call(self._acks.ack, entry_id)
                    self.metrics.handled.labels(*self._labels).inc()
                    return
                if event.attempt >= self.retry.max_attempts:
                    await self._dead_letter(entry_id, fields, event.attempt, error)
                    return
                delay = self.retry.delay(event.attempt)
                self.metrics.retried.labels(*self._labels).inc()
                self._log.info(
                    "retry_scheduled", entry_id=entry_id, attempt=event.attempt,
                    retry_in_s=round(delay, 3),
                )  # fmt: skip
                if await self._sleep(delay):
                    return  # stopping: left pending, taken over later
                deliveries = await self._redis_call(self._claims.reclaim, entry_id)
                if deliveries <= 0:
                    self._log.info(
                        "retry_dropped", entry_id=entry_id,
                        reason="taken over" if deliveries == 0 else "message deleted",
                    )  # fmt: skip
                    return
                event = replace(event, attempt=deliveries)
        except ResponseError as exc:
            # NOGROUP and the like: the entry's state went with the group; nothing to ack.
            self._log.error("entry_abandoned", entry_id=entry_id, error=str(exc))
        finally:
            self._held.discard(entry_id)

    async def _attempt(self, event: Event) -> str | None:
        """Run the handler once; the error text when it raised."""
        self.metrics.in_flight.labels(*self._labels).inc()
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.handler(event)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.metrics.in_flight.labels(*self._labels).dec()
        elapsed = time.perf_counter() - started
        outcome = "handled" if error is None else "failed"
        self.metrics.latency.labels(*self._labels, outcome).observe(elapsed)
        if error is not None:
            self.metrics.failed.labels(*self._labels).inc()
        self._log.info(
            "attempt", entry_id=event.entry_id, id=event.id, _event=event.event,
            attempt=event.attempt, outcome=outcome, latency_ms=round(elapsed * 1000, 3),
            **({"error": error} if error else {}),
        )  # fmt: skip
        return error

    async def _dead_letter(
        self, entry_id: str, fields: dict[str, bytes], attempts: int, error: str
    ) -> None:
        await self._redis_call(
            dead_letter, self.redis, self.stream, self.group, entry_id, fields,
            error=error, attempts=attempts,
        )  # fmt: skip
        self.metrics.dead_lettered.labels(*self._labels).inc()
        self._log.warning("dead_lettered", entry_id=entry_id, attempts=attempts, error=error[:500])

    # --- helpers -----------------------------------------------------------------------

    async def _redis_call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
        """Retry a Redis step through a short outage; every step here is idempotent."""
        failures = 0
        while True:
            try:
                return await fn(*args, **kw)
            except TRANSIENT as exc:
                failures += 1
                if self._stopping.is_set() and failures > 3:
                    raise
                await self._pause_after_redis_error(getattr(fn, "__name__", "call"), exc, failures)

    async def _pause_after_redis_error(self, step: str, exc: Exception, failures: int) -> None:
        delay = min(5.0, 0.05 * 2**failures)
        self._log.warning("redis_error", step=step, error=type(exc).__name__, retry_in_s=delay)
        await asyncio.sleep(delay)

    async def _ensure_group(self, start_id: str) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=start_id, mkstream=True)
            self._log.info("group_created", start_id=start_id)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _recreate_group(self) -> None:
        # The group vanished (Redis restarted without persistence, or it was deleted): start
        # it at 0 so entries written since are not skipped; at-least-once beats a gap.
        self._log.warning("group_missing_recreating")
        await self._ensure_group("0")

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the worker is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()
