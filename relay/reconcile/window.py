"""Which stretch of time a sweep covers, and which runs of a page fall in it.

A run belongs to a window when it reached a terminal status inside it (``updated_at``).
The run lists are newest first by creation, so a workflow's walk stops after the first page
that reaches runs created more than ``LONG_RUN_MARGIN`` before the window: a run that takes
longer than that from creation to its end, and ends inside the window, is missed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from relay.reconcile.api import Run

# How long a run may take from creation to its terminal status and still be found.
LONG_RUN_MARGIN = timedelta(hours=24)
# Start-up after a gap: the heartbeat older than this means nobody was receiving...
GAP_THRESHOLD_S = 30.0
# ...and the window starts this long before it (deliveries still being retried then).
GAP_MARGIN_S = 300.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Window:
    """``[since, until]`` in Unix seconds; ``clamped`` when max lookback cut it short."""

    since: float
    until: float
    clamped: bool = False

    @classmethod
    def bounded(cls, since: float, until: float, max_lookback: float) -> Window:
        """Never further back than ``max_lookback`` seconds before ``until``."""
        floor = until - max_lookback
        return cls(max(since, floor), until, clamped=since < floor)

    def start(self) -> datetime:
        return datetime.fromtimestamp(self.since, tz=UTC)

    def holds(self, run: Run) -> bool:
        """Whether ``run`` finished inside the window (its last update; else its creation,
        which a run that finished cannot have come after)."""
        moment = run.updated_at or run.created_at
        return moment is not None and moment.timestamp() >= self.since

    def past(self, page: Sequence[Run]) -> bool:
        """Whether the walk can stop after ``page``: it reaches runs created before the
        window by more than the margin, and every later page (newest first) holds only
        older ones. Runs without a creation time prove nothing."""
        horizon = self.start() - LONG_RUN_MARGIN
        created = [run.created_at for run in page if run.created_at is not None]
        return bool(created) and min(created) < horizon


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: a duration ago (``90s``, ``30m``, ``6h``, ``2d``) or an ISO 8601 time
    (UTC unless it says otherwise); Unix seconds."""
    now = time.time() if now is None else now
    text = text.strip()
    if match := _DURATION.fullmatch(text):
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "use a duration (90s, 30m, 6h, 2d) or an ISO 8601 time (2026-01-31T08:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
