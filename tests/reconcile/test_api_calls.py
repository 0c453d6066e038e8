"""What a sweep costs in API calls for a realistic organisation, measured on the fake.

50 workflows, 100 runs a day each, three days of history (15,000 runs). A workflow's walk
costs the pages down to the first run created more than the long-run margin (24 h) before
the window; the workflows list costs one page per 100 workflows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from relay.reconcile.sweep import Sweep
from relay.reconcile.window import LONG_RUN_MARGIN, Window
from tests.reconcile.conftest import ago
from tests.support.fake_anyformat import FakeAnyFormat

WORKFLOWS = 50
RUNS_PER_DAY = 100
DAYS = 3
SPACING = 86400 / RUNS_PER_DAY  # a run created every 14.4 minutes in each workflow
HOUR = 3600.0


def organisation(fake_api: FakeAnyFormat) -> None:
    for _ in range(WORKFLOWS):
        workflow = fake_api.add_workflow()
        for k in range(RUNS_PER_DAY * DAYS):
            created = k * SPACING + 30
            fake_api.add_run(workflow, "processed", ago(created + 60), ago(created))


def expected_calls(window_s: float) -> int:
    """One workflows page, plus per workflow the pages down to the first run created
    before the horizon (the page holding it ends the walk)."""
    horizon = window_s + LONG_RUN_MARGIN.total_seconds()
    newer = math.ceil(horizon / SPACING)  # runs created after the horizon
    pages = min(newer // 100 + 1, math.ceil(RUNS_PER_DAY * DAYS / 100))
    return math.ceil(WORKFLOWS / 100) + WORKFLOWS * pages


async def test_api_calls_per_sweep_for_50_workflows_of_100_runs_a_day(
    sweep: Sweep, fake_api: FakeAnyFormat, say: Callable[[str], None]
) -> None:
    organisation(fake_api)
    for name, window_s in (
        ("hourly sweep (last 2 h)", 2 * HOUR),
        ("start-up after a 1 h outage", HOUR + 300),
        ("start-up after a 60 h weekend outage", 60 * HOUR + 300),
    ):
        now = time.time()
        result = await sweep.run(Window(now - window_s, now), dry_run=True)
        in_window = WORKFLOWS * math.ceil((window_s - 30) / SPACING)
        say(
            f"{name}: {result.api_calls} API calls, {result.runs_seen} runs read, "
            f"{len(result.recovered)} events to recover"
        )
        assert result.api_calls == expected_calls(window_s)
        assert abs(len(result.recovered) - in_window) <= WORKFLOWS  # a run at each edge
