"""Operator pause: a group's workers stop taking entries while its pause record is set.

The record (``pause_key(stream)``, a field per paused group) is polled every
``POLL_INTERVAL`` seconds by each worker, so every worker of the group honours a pause
within the poll interval plus one blocking read (a few seconds); nothing has to reach the
workers but Redis. While paused, the intake loops (reading new entries, taking over idle
ones) wait; the entries a worker holds are finished and acknowledged, and the heartbeat
keeps them claimed. ``relay_worker_paused{reason="operator"}`` is 1 meanwhile.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Gauge
from structlog.typing import FilteringBoundLogger

from relay.redis.client import Redis
from relay.redis.keys import pause_key

POLL_INTERVAL = 1.0


async def set_paused(redis: Redis, stream: str, group: str, paused: bool) -> bool:
    """Pause or resume ``group`` of ``stream``; whether that changed anything."""
    if paused:
        return bool(await redis.hsetnx(pause_key(stream), group, time.time_ns() // 1_000_000))
    return bool(await redis.hdel(pause_key(stream), group))


async def is_paused(redis: Redis, stream: str, group: str) -> bool:
    return bool(await redis.hexists(pause_key(stream), group))


class PauseWatch:
    """One worker's view of its group's pause record, polled in ``run()``."""

    def __init__(
        self, redis: Redis, stream: str, group: str, gauge: Gauge, log: FilteringBoundLogger,
        interval: float = POLL_INTERVAL,
    ) -> None:  # fmt: skip
        self._redis, self._stream, self._group = redis, stream, group
        self._gauge, self._log, self._interval = gauge, log, interval
        self._resumed = asyncio.Event()  # cleared until the first poll says "not paused"
        self.paused: bool | None = None  # None: not polled yet
        self.waiting = 0  # intake loops waiting for a resume now

    async def wait_resumed(self) -> None:
        if self._resumed.is_set():
            return
        self.waiting += 1
        try:
            await self._resumed.wait()
        finally:
            self.waiting -= 1

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._interval)

    async def poll(self) -> None:
        try:
            paused = await is_paused(self._redis, self._stream, self._group)
        except Exception as exc:  # Redis away: keep the last answer (intake fails anyway)
            if self.paused is None:
                self._resumed.set()
            self._log.debug("pause_poll_failed", error=type(exc).__name__)
            return
        if paused == self.paused:
            return
        if self.paused is not None or paused:
            self._log.info("paused_by_operator" if paused else "resumed_by_operator")
        self.paused = paused
        self._gauge.set(1 if paused else 0)
        if paused:
            self._resumed.clear()
        else:
            self._resumed.set()
