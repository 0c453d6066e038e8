"""One sweep: walk every workflow's runs in a window and write the events that are missing.

Each recovered event goes through the ingest's own idempotent append, under its content
mark ``(event, extraction_id, status)``: a stream that already holds the event (its webhook
came, or an earlier sweep wrote it) is skipped, and a webhook arriving later is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from relay.reconcile.api import Run, RunsApi
from relay.reconcile.events import (
    TERMINAL,
    ReconciledEntry,
    event_for,
    reconciled_entry,
)
from relay.reconcile.window import Window
from relay.redis.client import Redis
from relay.redis.keys import dedupe_key
from relay.streams.marks import dedupe_marks
from relay.streams.routes import Router
from relay.streams.writer import FanoutWriter


@dataclass(frozen=True, slots=True)
class Recovered:
    """One event a sweep wrote (or, dry, would write); ``streams`` where it was new."""

    entry: ReconciledEntry
    streams: tuple[str, ...]


@dataclass(slots=True)
class SweepResult:
    window: Window
    dry_run: bool = False
    workflows: int = 0
    api_calls: int = 0
    runs_seen: int = 0
    in_window: int = 0  # terminal runs inside the window
    not_subscribed: int = 0  # cancelled, or an event outside RELAY_EVENTS
    present: int = 0  # events every routed stream already held
    recovered: list[Recovered] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """For the sweep's log line and the CLI's summary."""
        return {
            "since": round(self.window.since, 3),
            "until": round(self.window.until, 3),
            "workflows": self.workflows,
            "api_calls": self.api_calls,
            "runs_seen": self.runs_seen,
            "in_window": self.in_window,
            "not_subscribed": self.not_subscribed,
            "already_present": self.present,
            "written" if not self.dry_run else "would_write": len(self.recovered),
        }


class Sweep:
    def __init__(
        self,
        api: RunsApi,
        redis: Redis,
        writer: FanoutWriter,
        router: Router,
        events: Collection[str],
    ) -> None:
        self._api = api
        self._redis = redis
        self._writer = writer
        self._router = router
        self._events = frozenset(events)

    async def run(
        self,
        window: Window,
        *,
        dry_run: bool = False,
        on_recovered: Callable[[Recovered], None] | None = None,
    ) -> SweepResult:
        """Walk and write; raises the API's or Redis's error (nothing is rolled back:
        what was written stays, and the next sweep skips it)."""
        result = SweepResult(window, dry_run)
        calls_before = self._api.calls
        try:
            async for workflow_id in self._api.workflow_ids():
                result.workflows += 1
                async for page in self._api.run_pages(workflow_id):
                    for run in page:
                        result.runs_seen += 1
                        recovered = await self._consider(run, workflow_id, window, result)
                        if recovered is not None:
                            result.recovered.append(recovered)
                            if on_recovered is not None:
                                on_recovered(recovered)
                    if window.past(page):
                        break
        finally:
            result.api_calls = self._api.calls - calls_before
        return result

    async def _consider(
        self, run: Run, workflow_id: str, window: Window, result: SweepResult
    ) -> Recovered | None:
        if run.status not in TERMINAL or not window.holds(run):
            return None
        result.in_window += 1
        event = event_for(run, self._events)
        if event is None:
            result.not_subscribed += 1
            return None
        entry = reconciled_entry(run, event, workflow_id)
        streams = self._router.streams_for(event, workflow_id)
        if result.dry_run:
            new = await self._missing_from(streams, dedupe_marks(entry.id, entry.content_mark))
        else:
            written = await self._writer.write(entry, streams)
            new = tuple(s for s, w in zip(streams, written, strict=True) if isinstance(w, str))
        if not new:
            result.present += 1
            return None
        return Recovered(entry, new)

    async def _missing_from(
        self, streams: tuple[str, ...], marks: tuple[str, ...]
    ) -> tuple[str, ...]:
        """Dry run: the streams that hold none of the entry's marks (read only)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.zmscore(dedupe_key(stream), list(marks))
            scores = await pipe.execute()
        return tuple(s for s, found in zip(streams, scores, strict=True) if not any(found))
