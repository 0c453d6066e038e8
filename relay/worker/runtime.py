"""The worker: reads a stream through a consumer group and runs a handler for each entry.

An entry is acknowledged only after its handler returned. A failed attempt is retried
after a capped exponential backoff (or the handler's ``Retry(after=…)``); the attempt
number is Redis's delivery counter, so it survives restarts. After the last attempt, or at
once on ``Reject``, the entry moves to ``{stream}:dlq``. Entries of a consumer that died are
taken over after ``claim_idle``; entries this consumer holds are kept claimed by heartbeats.

Three loops feed and guard the held entries: ``read`` takes new entries
(``relay.worker.reading``), ``claim`` takes over idle ones and ``heartbeat`` keeps ours
(``relay.worker.takeover``). Both intake loops share one shape (``relay.worker.intake``):
they wait while the hold is full, a downstream outage or an operator (``relay.worker.pause``,
polled by a fourth loop) pauses consumption. This module
runs them and follows each entry from its first attempt to its acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, TypeVar

import structlog

from relay.options import WorkerOptions
from relay.redis.client import Redis
from relay.redis.errors import ResponseError
from relay.redis.functions import load_library
from relay.tracing import EntryTrace, Tracing, tracer
from relay.worker.acks import AckBatcher
from relay.worker.breaker import Breaker, Verdict
from relay.worker.capacity import Capacity
from relay.worker.claims import Claims
from relay.worker.client import require_bytes_client
from relay.worker.deadletter import dead_letter
from relay.worker.event import Event, MalformedEntry, decode_fields, parse_entry
from relay.worker.handling import Outcome, call_handler
from relay.worker.intake import TRANSIENT, Stopping
from relay.worker.metrics import WorkerMetrics
from relay.worker.pause import PauseWatch
from relay.worker.reading import read_loop
from relay.worker.retry import RetryPolicy
from relay.worker.takeover import claim_loop, heartbeat_loop

Handler = Callable[[Event], Awaitable[Any]]
# Called once per process: set-up before the first entry, tear-down after the last one.
Lifespan = Callable[[], AbstractAsyncContextManager[Mapping[str, Any] | None]]
SHORT_CLAIM_IDLE = 30.0
HELD_PER_SLOT = 10  # default cap on held entries: ten per handler slot

T = TypeVar("T")
log = structlog.get_logger("relay.worker")


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@contextlib.asynccontextmanager
async def _no_lifespan() -> AsyncIterator[None]:
    yield None


class Worker:
    """One consumer of one group: ``await Worker(redis, stream=..., group=...,
    handler=handle).run()`` until ``stop()``.

    Args:
        redis: a redis-py asyncio client (``Redis``, Sentinel master or ``RedisCluster``)
            returning bytes; one made with ``decode_responses=True`` is refused here.
        stream, group: what to consume; the group is created when missing, at ``start_id``.
        handler: ``async def handle(event: Event)``. Return: acknowledged; raise
            :class:`~relay.worker.controls.Reject`: dead-lettered now; raise
            :class:`~relay.worker.controls.Retry` or anything else: retried per ``retry``.
        consumer: this consumer's name in the group [host name + pid].
        concurrency: handlers running at once; ``max_held``: entries held at most.
        retry: attempts and backoff (:class:`~relay.worker.retry.RetryPolicy`).
        handler_timeout: seconds a handler may run (``None``: no limit).
        claim_idle: seconds before another consumer's idle entry is taken over.
        outage_threshold, outage_probe_interval: pause consumption when that many
            different entries fail in a row; probe every so many seconds.
        shutdown_timeout: seconds ``run`` waits for handlers after ``stop()``.
        lifespan: async context manager run around the worker; what it yields is
            ``event.state``.

    The defaults are :class:`relay.options.WorkerOptions`'s, declared once for the CLI too.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str,
        group: str,
        handler: Handler,
        consumer: str | None = WorkerOptions.consumer,
        concurrency: int = WorkerOptions.concurrency,
        max_held: int | None = WorkerOptions.max_held,
        retry: RetryPolicy | None = None,
        handler_timeout: float | None = WorkerOptions.handler_timeout,
        claim_idle: float = WorkerOptions.claim_idle,
        outage_threshold: int = WorkerOptions.outage_threshold,
        outage_probe_interval: float = WorkerOptions.outage_probe_interval,
        shutdown_timeout: float = WorkerOptions.shutdown_timeout,
        start_id: str = WorkerOptions.start_id,
        block: float = 2.0,
        lifespan: Lifespan | None = None,
        metrics: WorkerMetrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        if claim_idle <= 0 or shutdown_timeout < 0 or block <= 0:
            raise ValueError("claim_idle and block must be positive, shutdown_timeout >= 0")
        if handler_timeout is not None and handler_timeout <= 0:
            raise ValueError("handler_timeout must be positive (or None: no limit)")
        require_bytes_client(redis)
        self.redis = redis
        self.stream = stream
        self.group = group
        self.handler = handler
        self.consumer = consumer or default_consumer_name()
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.handler_timeout = handler_timeout
        self.claim_idle = claim_idle
        self.shutdown_timeout = shutdown_timeout
        self.start_id = start_id
        self.block_ms = int(block * 1000)
        self.metrics = metrics or WorkerMetrics()
        self.tracing = tracing or tracer()
        self.capacity = Capacity(concurrency, max_held or HELD_PER_SLOT * concurrency)
        self.log = log.bind(stream=stream, group=group, consumer=self.consumer)
        self.breaker = Breaker(outage_threshold, outage_probe_interval, self.log)
        self.series = self.metrics.series(stream, group)
        self.pause = PauseWatch(redis, stream, group, self.series.paused_by_operator, self.log)
        self._lifespan = lifespan or _no_lifespan
        self._state: Mapping[str, Any] = {}
        self.claims = Claims(redis, stream, group, self.consumer)
        self._acks = AckBatcher(redis, stream, group)
        self._tasks: set[asyncio.Task[None]] = set()
        self.gone: set[str] = set()  # held entries whose message was deleted meanwhile
        self._about: dict[str, dict[str, Any]] = {}  # held entries: what their log lines name
        self.last_read: str | None = None  # the newest entry this consumer was given
        self._generation = 0  # bumped when the group is recreated
        self.phase = "starting"  # then "running", "draining" (handlers finish), "stopped"
        self._stopping = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking entries; ``run`` then lets handlers in flight finish and returns."""
        self._stopping.set()

    async def readiness(self) -> str | None:
        """Why this worker is not ready (``None``: ready): it runs (set-up done, not
        stopping), Redis answers, and the group exists."""
        if self.phase != "running":
            return self.phase
        try:
            await self.redis.ping()
            groups: Any = await self.redis.xinfo_groups(self.stream)
        except TRANSIENT:
            return "redis_unreachable"
        except ResponseError:  # no such stream: the group cannot be there either
            return "group_missing"
        names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
        return None if self.group in names else "group_missing"

    async def run(self) -> None:
        """Consume until ``stop()``: create the group, then read, retry, take over and
        dead-letter; return once the handlers in flight finished (or ``shutdown_timeout``)."""
        if self.claim_idle < SHORT_CLAIM_IDLE:
            self.log.warning(
                "claim_idle_short",
                claim_idle_s=self.claim_idle,
                advice="entries are kept claimed while their handler runs, but a worker "
                "stalled longer than claim_idle loses them to another consumer, which "
                "runs them again",
            )
        async with self._lifespan() as state:
            self._state = state or {}
            try:
                # Redis unreachable at start is waited for (readiness: "starting").
                await self.or_stop(self._redis_call(self._ensure_group, self.start_id))
                await self.or_stop(self._redis_call(load_library, self.redis))
            except Stopping:
                pass  # stopped before Redis ever answered
            else:
                self.phase = "running"
                self.log.info(
                    "worker_started", concurrency=self.concurrency,
                    max_held=self.capacity.max_held,
                )  # fmt: skip
                await self._serve()
        self.phase = "stopped"
        self.log.info("worker_stopped")

    async def _serve(self) -> None:
        intake = [
            asyncio.create_task(self.pause.run(), name="pause"),
            asyncio.create_task(read_loop(self), name="read"),
            asyncio.create_task(claim_loop(self), name="claim"),
        ]
        heartbeat = asyncio.create_task(heartbeat_loop(self), name="heartbeat")
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([stopping, heartbeat, *intake], return_when=asyncio.FIRST_COMPLETED)
        self._stopping.set()
        for task in intake:
            task.cancel()
        results = await asyncio.gather(*intake, stopping, return_exceptions=True)
        self.phase = "draining"
        await self._drain()  # the heartbeat keeps the entries of the handlers finishing
        heartbeat.cancel()
        results += await asyncio.gather(heartbeat, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, Stopping):
                raise result  # a loop died of something unexpected: say so, non-zero

    async def _drain(self) -> None:
        tasks = set(self._tasks)
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
            for task in unfinished:
                task.cancel()  # left pending: another consumer takes it over
            await asyncio.gather(*tasks, return_exceptions=True)
            if unfinished:
                self.log.warning("handlers_cancelled_at_shutdown", count=len(unfinished))

    # --- intake ------------------------------------------------------------------------

    # --- one entry ---------------------------------------------------------------------

    def spawn(self, entry_id: str, raw: Mapping[bytes, bytes], attempt: int) -> None:
        if not self.capacity.hold(entry_id):
            return  # already ours and in progress (taken over from ourselves)
        self.series.held.set(len(self.capacity.held))
        message_id = raw.get(b"id", b"").decode(errors="replace")
        self._about[entry_id] = {"entry_id": entry_id, "id": message_id, "attempt": attempt}
        task = asyncio.create_task(self._process(entry_id, decode_fields(raw), attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, entry_id: str, fields: dict[str, bytes], attempt: int) -> None:
        generation = self._generation
        trace = self.tracing.entry(self.stream, self.group, entry_id, fields)
        try:
            if attempt > self.retry.max_attempts:
                await self._dead_letter(
                    entry_id, fields, attempt - 1,
                    "no outcome after the last attempt: the consumer handling it died or "
                    "was stopped before its handler returned", trace,
                )  # fmt: skip
                return
            try:
                event = parse_entry(self.stream, entry_id, fields, attempt, self._state)
            except MalformedEntry as exc:
                error = f"malformed entry: {exc}"
                await self._dead_letter(entry_id, fields, attempt, error, trace)
                return
            while True:
                outcome = await self._run_once(event, trace)
                if outcome.handled:
                    await self._redis_call(self._acks.ack, entry_id)
                    self.series.handled.inc()
                    trace.settle("handled")
                    return
                trace.failed(outcome.exception)
                if outcome.rejected:
                    self.series.rejected.inc()
                    await self._dead_letter(
                        entry_id, fields, event.attempt, outcome.error, trace, "rejected"
                    )
                    return
                if entry_id in self.gone:
                    await self.lost(entry_id, "deleted while its handler was failing")
                    return
                if self.breaker.failed(entry_id) is Verdict.OUTAGE:
                    self.series.paused.set(1)
                    trace.settle("retry")
                    continue  # not counted: the next try waits for the breaker's probe turn
                if event.attempt >= self.retry.max_attempts:
                    await self._dead_letter(entry_id, fields, event.attempt, outcome.error, trace)
                    return
                trace.settle("retry")
                deliveries = await self._wait_and_reclaim(event, outcome, generation)
                if deliveries <= 0:
                    return
                event = replace(event, attempt=deliveries)
                self._about[entry_id]["attempt"] = deliveries
        except Stopping:
            pass  # left pending: taken over after claim_idle, by us or another consumer
        except ResponseError as exc:
            # NOGROUP and the like: the entry's state went with the group; nothing to ack.
            self.log.error("entry_abandoned", **self.entry(entry_id), error=str(exc))
        finally:
            trace.settle("")  # stopped (or abandoned) mid-attempt: no outcome to tell
            self._about.pop(entry_id, None)
            self.capacity.release(entry_id)
            self.gone.discard(entry_id)
            self.series.held.set(len(self.capacity.held))
            if not self.capacity.held and self.breaker.is_open and not self._stopping.is_set():
                self.breaker.nothing_to_probe()
                self.series.paused.set(0)

    async def _run_once(self, event: Event, trace: EntryTrace) -> Outcome:
        """One attempt, once the breaker and a handler slot let it run."""
        if self._stopping.is_set():
            raise Stopping
        probe = await self.or_stop(self.breaker.admit()) if self.breaker.is_open else False
        try:
            if not self.capacity.try_acquire_slot():
                await self.or_stop(self.capacity.acquire_slot())
            try:
                with trace.attempt(event.attempt):
                    outcome = await self._attempt(event)
            finally:
                self.capacity.release_slot()
            if outcome.handled and self.breaker.succeeded():
                self.series.paused.set(0)
            return outcome
        finally:
            if probe:
                self.breaker.release()

    async def _wait_and_reclaim(self, event: Event, outcome: Outcome, generation: int) -> int:
        """Wait out the backoff, then claim the entry again: its new delivery count, or
        ``<= 0`` when it is no longer ours to retry."""
        after = outcome.retry_after
        delay = self.retry.delay(event.attempt) if after is None else after
        self.series.retried.inc()
        self.log.info("retry_scheduled", **self.entry(event.entry_id), retry_in_s=round(delay, 3))
        await self.or_stop(asyncio.sleep(delay))
        deliveries = int(await self._redis_call(self.claims.reclaim, event.entry_id))
        if deliveries == -1:  # acknowledged by the reclaim
            await self.lost(event.entry_id, "deleted while waiting for its retry", ack=False)
        elif deliveries == 0 and event.entry_id in self.gone:
            await self.lost(event.entry_id, "deleted while waiting for its retry")
        elif deliveries == 0 and generation != self._generation:
            await self.lost(event.entry_id, "its group was recreated meanwhile")
        elif deliveries == 0:
            self.log.info("retry_dropped", **self.entry(event.entry_id), reason="taken over")
        return deliveries

    async def _attempt(self, event: Event) -> Outcome:
        """Run the handler once and say how it went."""
        self.series.in_flight.inc()
        started = time.perf_counter()
        try:
            outcome = await call_handler(self.handler, event, self.handler_timeout)
        finally:
            self.series.in_flight.dec()
        elapsed = time.perf_counter() - started
        kind = "handled" if outcome.handled else "rejected" if outcome.rejected else "failed"
        self.series.latency[kind].observe(elapsed)
        if kind == "failed":
            self.series.failed.inc()
        self.log.info(
            "attempt", entry_id=event.entry_id, id=event.id, _event=event.event,
            attempt=event.attempt, outcome=kind, latency_ms=round(elapsed * 1000, 3),
            **({"error": outcome.error} if outcome.error else {}),
        )  # fmt: skip
        return outcome

    async def _dead_letter(
        self, entry_id: str, fields: dict[str, bytes], attempts: int, error: str,
        trace: EntryTrace, outcome: str = "dead_lettered",
    ) -> None:  # fmt: skip
        """The move, a ``send {stream}:dlq`` span (its entry carries that span's context)."""
        with trace.dead_letter(self.stream, attempts) as send:
            await self._redis_call(
                dead_letter, self.redis, self.stream, self.group, entry_id, fields,
                error=error, attempts=attempts, send=send,
            )  # fmt: skip
            self.series.dead_lettered.inc()
            self.log.warning(
                "dead_lettered", **self.entry(entry_id), attempts=attempts, error=error[:500]
            )
        trace.settle(outcome)

    async def lost(self, entry_id: str, reason: str, *, ack: bool = True) -> None:
        """An entry of the group went before its handler succeeded: never silently."""
        self.series.lost.inc()
        self.log.error("entry_lost", **self.entry(entry_id), reason=reason)
        if ack:
            await self._redis_call(self.redis.xack, self.stream, self.group, entry_id)

    # --- helpers -----------------------------------------------------------------------

    def entry(self, entry_id: str) -> dict[str, Any]:
        """What every log line about an entry names beside the stream and group (bound):
        ``entry_id``, the webhook's ``id`` and the ``attempt`` (``None`` when this worker
        does not hold it, e.g. a deleted entry it never read)."""
        return self._about.get(entry_id) or {"entry_id": entry_id, "id": None, "attempt": None}

    async def or_stop(self, step: Awaitable[T]) -> T:
        """Await ``step`` unless the worker stops first (then raise ``Stopping``)."""
        if self._stopping.is_set():
            if asyncio.iscoroutine(step):
                step.close()
            raise Stopping
        task = asyncio.ensure_future(step)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise Stopping
        return task.result()

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
                await self.pause_after_redis_error(getattr(fn, "__name__", "call"), exc, failures)

    async def pause_after_redis_error(self, step: str, exc: Exception, failures: int) -> None:
        delay = min(5.0, 0.05 * 2**failures)
        self.log.warning("redis_error", step=step, error=type(exc).__name__, retry_in_s=delay)
        await asyncio.sleep(delay)

    async def _ensure_group(self, start_id: str) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=start_id, mkstream=True)
            self.log.info("group_created", start_id=start_id)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def recreate_group(self) -> None:
        """The group vanished (an operator's ``XGROUP DESTROY``, Redis restarted without
        persistence): recreate it after the newest entry this worker was given, so that
        what it handled is not handled again; at ``0`` if it was given nothing."""
        start_id = self.last_read or "0"
        self._generation += 1
        self.claims.restart_scan()
        self.log.warning("group_missing_recreating", start_id=start_id)
        await self._ensure_group(start_id)
