"""Outage detection: when every call fails, pause instead of burning attempts.

A handler that fails for one entry while others succeed has met a bad entry: it is retried
and, after its last attempt, dead-lettered. A handler that fails for ``threshold`` different
entries in a row, with no success in between, has met a dependency that is down: the worker
opens the breaker, stops taking entries, and sends one probe (a held entry's next attempt)
every ``probe_interval`` seconds. Failures while open, and the one that opened it, are not
counted as attempts, so an outage of any length sends nothing to the dead-letter stream.
The first probe that succeeds closes the breaker and work resumes.

One entry failing again and again never opens it: the streak counts distinct entries.
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum

import structlog
from structlog.typing import FilteringBoundLogger


class Verdict(Enum):
    COUNTED = "counted"  # an ordinary failed attempt: retry or dead-letter as usual
    OUTAGE = "outage"  # the dependency is down: the attempt does not count


class Breaker:
    def __init__(
        self, threshold: int, probe_interval: float, log: FilteringBoundLogger | None = None
    ) -> None:
        if threshold < 0 or probe_interval <= 0:
            raise ValueError("need outage threshold >= 0 (0: off) and probe interval > 0")
        self._log = log or structlog.get_logger("relay.worker")
        self.threshold = threshold
        self.probe_interval = probe_interval
        self._streak: set[str] = set()
        self._closed = asyncio.Event()
        self._closed.set()
        self._probe = asyncio.Lock()  # one probe at a time; FIFO, so held entries alternate
        self._next_probe = 0.0
        self.probes = 0  # in the current (or last) outage
        self.outages = 0  # since start

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def admit(self) -> bool:
        """Wait until this attempt may run; True when it runs as the probe of an outage,
        and then :meth:`release` must follow its outcome."""
        if not self.is_open:
            return False
        await self._probe.acquire()
        try:
            while self.is_open:
                delay = self._next_probe - time.monotonic()
                if delay <= 0:
                    self.probes += 1
                    return True
                closed = asyncio.ensure_future(self._closed.wait())
                try:
                    await asyncio.wait([closed], timeout=delay)
                finally:
                    closed.cancel()
        except BaseException:
            self._probe.release()
            raise
        self._probe.release()
        return False

    def release(self) -> None:
        """The probe's outcome is recorded: let the next one in."""
        self._next_probe = time.monotonic() + self.probe_interval
        self._probe.release()

    def succeeded(self) -> bool:
        """Record a success; True when it ends an outage."""
        self._streak.clear()
        if not self.is_open:
            return False
        self._closed.set()
        self._log.warning("downstream_recovered", probes=self.probes)
        return True

    def nothing_to_probe(self) -> None:
        """Every held entry is gone (lost, stopped): no probe can end the outage, so resume
        and let new entries show whether it is over (they open it again if not)."""
        if self.is_open:
            self._streak.clear()
            self._closed.set()
            self._log.warning("downstream_outage_unprobed", probes=self.probes)

    def failed(self, entry_id: str) -> Verdict:
        if self.threshold == 0:
            return Verdict.COUNTED
        if self.is_open:
            return Verdict.OUTAGE
        self._streak.add(entry_id)
        if len(self._streak) < self.threshold:
            return Verdict.COUNTED
        self._closed.clear()
        self._next_probe = time.monotonic() + self.probe_interval
        self.probes = 0
        self.outages += 1
        self._log.error(
            "downstream_outage",
            failed_entries=len(self._streak),
            advice="every recent call failed: consumption paused, one probe every "
            f"{self.probe_interval}s; attempts are not counted meanwhile",
        )
        return Verdict.OUTAGE
