"""When to sweep, and one sweep at a time across every relay sharing the Redis.

Serving relays beat a shared heartbeat every few seconds. A beat that finds the previous
one older than ``GAP_THRESHOLD_S`` (a relay starting after everyone was down, or getting
Redis back after an outage) records a gap from ``GAP_MARGIN_S`` before it. Each relay then
looks every ``tick`` seconds, under a Redis lock, whether a sweep is due: a gap is pending,
or the last successful sweep ended an interval ago. So the organisation is swept about once
per ``RELAY_RECONCILE_INTERVAL`` over the last two intervals, however many replicas run.

Everything here runs in background tasks: the API down or slow never delays a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from relay.reconcile.api import RunsApi
from relay.reconcile.metrics import ReconcileMetrics
from relay.reconcile.state import SharedState, State
from relay.reconcile.sweep import Recovered, Sweep, SweepResult
from relay.reconcile.window import GAP_MARGIN_S, GAP_THRESHOLD_S, Window
from relay.redis.client import Redis
from relay.redis.errors import RedisError
from relay.redis.keys import reconcile_lock_key
from relay.registration.client import ApiError
from relay.registration.lock import RedisLock
from relay.settings import Settings
from relay.streams.errors import StreamsError
from relay.streams.routes import Router
from relay.streams.writer import FanoutWriter

log = structlog.get_logger("relay.reconcile")

HEARTBEAT_S = 5.0  # the contract asks for 10 s or more often; the gap threshold is 30 s
WAIT_RECEIVING_S = 0.25  # before the first secret is loaded, or while draining
LOCK_TTL_S = 30.0
MAX_TICK_S = 60.0


class Busy(Exception):
    """Another relay is sweeping now."""


@dataclass(frozen=True, slots=True)
class Plan:
    reason: str  # gap | periodic | manual
    window: Window


def plan(state: State, now: float, interval: float, max_lookback: float) -> Plan | None:
    """The sweep due now, if any. Periodic: the last two intervals, once the last sweep
    (or, before any, the first relay's start) is an interval old. A pending gap widens
    the window back to where the gap began."""
    since = now - 2 * interval
    if state.gap_since is not None:
        return Plan("gap", Window.bounded(min(since, state.gap_since), now, max_lookback))
    last = state.last_until if state.last_until is not None else state.epoch
    if last is not None and now - last >= interval:
        return Plan("periodic", Window.bounded(since, now, max_lookback))
    return None


class Reconciler:
    def __init__(
        self,
        *,
        redis: Redis,
        api: RunsApi,
        sweep: Sweep,
        prefix: str,
        interval: float,
        max_lookback: float,
        metrics: ReconcileMetrics,
    ) -> None:
        self._redis = redis
        self._api = api
        self._sweep = sweep
        self.state = SharedState(redis, prefix)
        self._lock_key = reconcile_lock_key(prefix)
        # One token for the life of this relay: a lock it still held when Redis went away
        # (persisted with the data) is its own to take again, not a 30 s wait.
        self._sweep_lock = RedisLock(redis, self._lock_key, ttl=LOCK_TTL_S)
        self.interval = interval
        self.max_lookback = max_lookback
        self.metrics = metrics
        self.tick_s = min(interval / 4, MAX_TICK_S)
        self._wake = asyncio.Event()
        self.checks = 0  # how often this relay looked whether a sweep was due

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        redis: Redis,
        writer: FanoutWriter,
        router: Router,
        metrics: ReconcileMetrics,
    ) -> Reconciler:
        """Needs ``ANYFORMAT_API_KEY``; :meth:`close` releases the API's connections."""
        assert settings.anyformat_api_key is not None
        api = RunsApi(settings.anyformat_base_url, settings.anyformat_api_key)
        return cls(
            redis=redis,
            api=api,
            sweep=Sweep(api, redis, writer, router, settings.events),
            prefix=settings.stream_prefix,
            interval=settings.reconcile_interval,
            max_lookback=settings.reconcile_lookback,
            metrics=metrics,
        )

    async def close(self) -> None:
        await self._api.close()

    # --- background: relay run -----------------------------------------------------------

    async def heartbeat(self, receiving: Callable[[], bool]) -> None:
        """Beat while this relay can receive (a secret loaded, not draining); wake the
        sweeper when the beat finds a gap."""
        while True:
            if not receiving():
                await asyncio.sleep(WAIT_RECEIVING_S)
                continue
            now = time.time()
            try:
                previous = await self.state.beat(now, GAP_THRESHOLD_S, GAP_MARGIN_S)
            except RedisError as exc:
                log.warning("reconcile_heartbeat_failed", error=type(exc).__name__)
            else:
                if previous is not None:
                    log.warning(
                        "reception_gap",
                        last_heartbeat=round(previous, 3),
                        gap_s=round(now - previous, 3),
                    )
                    self._wake.set()
            await asyncio.sleep(HEARTBEAT_S)

    async def sweeper(self) -> None:
        """Sweep whenever one is due, checking every tick or when a gap is found."""
        while True:
            self._wake.clear()
            try:
                await self.sweep_if_due()
            except Busy:
                pass
            except (ApiError, RedisError, StreamsError):
                pass  # logged and counted by run_sweep; retried at the next tick
            except Exception:
                log.exception("reconcile_crashed")
            self.checks += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)

    async def sweep_if_due(self) -> SweepResult | None:
        lock = self._sweep_lock
        if not (await lock.acquire() or await lock.extend()):
            raise Busy
        async with lock.kept():
            due = plan(await self.state.read(), time.time(), self.interval, self.max_lookback)
            if due is None:
                return None
            return await self.run_sweep(due)

    # --- by hand: relay reconcile ----------------------------------------------------------

    async def sweep_now(
        self,
        window: Window,
        *,
        dry_run: bool = False,
        on_recovered: Callable[[Recovered], None] | None = None,
    ) -> SweepResult:
        """``relay reconcile``: this window now. A dry run reads only, so takes no lock."""
        if dry_run:
            return await self._sweep.run(window, dry_run=True, on_recovered=on_recovered)
        lock = RedisLock(self._redis, self._lock_key, ttl=LOCK_TTL_S)
        if not await lock.acquire():
            raise Busy
        async with lock.kept():
            return await self.run_sweep(Plan("manual", window), on_recovered)

    # --- one sweep -------------------------------------------------------------------------

    async def run_sweep(
        self, due: Plan, on_recovered: Callable[[Recovered], None] | None = None
    ) -> SweepResult:
        """Sweep, record it in Redis when it succeeded, count it, log one line; its report
        (either way) is kept for the operator API."""
        started = time.monotonic()
        started_at = time.time()
        try:
            result = await self._sweep.run(due.window, on_recovered=on_recovered)
            await self.state.finish(due.window.since, due.window.until, time.time())
        except (ApiError, RedisError, StreamsError) as exc:
            self.metrics.sweeps.labels("failed").inc()
            error = _cause(exc)
            await self._report(due, started_at, outcome="failed", error=error)
            log.error(
                "reconcile_sweep",
                outcome="failed",
                reason=due.reason,
                since=round(due.window.since, 3),
                error=error,
                duration_ms=round((time.monotonic() - started) * 1000),
            )
            raise
        self.metrics.sweeps.labels("ok").inc()
        self.metrics.last_success.set(time.time())
        for recovered in result.recovered:
            self.metrics.events.labels(recovered.entry.event).inc()
        await self._report(
            due,
            started_at,
            outcome="ok",
            runs_seen=result.runs_seen,
            events_written=len(result.recovered),
        )
        log.info(
            "reconcile_sweep",
            outcome="ok",
            reason=due.reason,
            clamped=due.window.clamped,
            duration_ms=round((time.monotonic() - started) * 1000),
            **result.counts(),
        )
        return result

    async def _report(self, due: Plan, started_at: float, **outcome: Any) -> None:
        report = {
            "reason": due.reason,
            "started_at": started_at,
            "finished_at": time.time(),
            "since": due.window.since,
            "until": due.window.until,
            "runs_seen": None,
            "events_written": None,
            "error": None,
            **outcome,
        }
        try:
            await self.state.record_sweep(report)
        except RedisError as exc:  # the sweep's own outcome stands; only the report is lost
            log.warning("reconcile_report_failed", error=type(exc).__name__)


def _cause(exc: Exception) -> str:
    """What failed, for the log: the API's message, or the class name of Redis's error
    (never its text, which may hold a URL)."""
    if isinstance(exc, ApiError):
        return str(exc)
    return exc.error if isinstance(exc, StreamsError) else type(exc).__name__
