"""Which window a sweep covers, and when one is due: pure functions, edges included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relay.reconcile.api import Run, parse_time
from relay.reconcile.reconciler import plan
from relay.reconcile.state import State
from relay.reconcile.window import LONG_RUN_MARGIN, Window, parse_since

NOW = 1_800_000_000.0
HOUR = 3600.0
WEEK = 604_800.0


def run(created: float | None, updated: float | None, status: str = "processed") -> Run:
    def moment(value: float | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, tz=UTC)

    return Run("r", status, moment(created), moment(updated), None)


def test_a_periodic_sweep_is_due_exactly_one_interval_after_the_last_one() -> None:
    assert plan(State(last_until=NOW - HOUR + 0.001), NOW, HOUR, WEEK) is None
    due = plan(State(last_until=NOW - HOUR), NOW, HOUR, WEEK)
    assert due is not None and due.reason == "periodic"
    assert (due.window.since, due.window.until) == (NOW - 2 * HOUR, NOW)


def test_before_any_sweep_the_first_relays_start_counts_as_the_last_one() -> None:
    assert plan(State(epoch=NOW - HOUR + 1), NOW, HOUR, WEEK) is None
    assert plan(State(epoch=NOW - HOUR), NOW, HOUR, WEEK) is not None
    assert plan(State(), NOW, HOUR, WEEK) is None  # nothing known yet (Redis just emptied)


def test_a_pending_gap_is_due_at_once_and_widens_the_window_back_to_it() -> None:
    due = plan(State(gap_since=NOW - 5 * HOUR, last_until=NOW - 60), NOW, HOUR, WEEK)
    assert due is not None and due.reason == "gap"
    assert due.window.since == NOW - 5 * HOUR and not due.window.clamped
    short = plan(State(gap_since=NOW - 60, last_until=NOW - 60), NOW, HOUR, WEEK)
    assert short is not None and short.window.since == NOW - 2 * HOUR  # never narrower


def test_no_window_reaches_further_back_than_the_max_lookback() -> None:
    due = plan(State(gap_since=NOW - 30 * 86400), NOW, HOUR, WEEK)
    assert due is not None and due.window.since == NOW - WEEK and due.window.clamped
    edge = Window.bounded(NOW - WEEK, NOW, WEEK)
    assert edge.since == NOW - WEEK and not edge.clamped


def test_a_run_is_in_the_window_when_it_finished_at_or_after_its_start() -> None:
    window = Window(NOW - HOUR, NOW)
    assert window.holds(run(NOW - 2 * HOUR, NOW - HOUR))
    assert not window.holds(run(NOW - 2 * HOUR, NOW - HOUR - 0.001))
    # No update time: a run created inside the window finished inside it too.
    assert window.holds(run(NOW - HOUR, None))
    assert not window.holds(run(NOW - HOUR - 1, None))
    assert not window.holds(run(None, None))


def test_a_walk_stops_after_the_page_that_reaches_past_the_margin() -> None:
    window = Window(NOW - HOUR, NOW)
    horizon = NOW - HOUR - LONG_RUN_MARGIN.total_seconds()
    assert window.past([run(NOW, None), run(horizon - 0.001, None)])
    assert not window.past([run(NOW, None), run(horizon, None)])
    assert window.past([run(None, None), run(horizon - 1, None)])
    assert not window.past([run(None, None)])  # no creation time: go on
    assert not window.past([])


def test_since_is_a_duration_ago_or_a_time() -> None:
    assert parse_since("90s", now=NOW) == NOW - 90
    assert parse_since("30m", now=NOW) == NOW - 1800
    assert parse_since("6h", now=NOW) == NOW - 6 * HOUR
    assert parse_since("2d", now=NOW) == NOW - 2 * 86400
    assert parse_since("2027-01-15T08:00:00Z") == datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    assert parse_since("2027-01-15T08:00:00") == datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError, match="duration"):
        parse_since("yesterday")


def test_api_timestamps_parse_with_or_without_a_zone_and_null_is_unknown() -> None:
    moment = datetime(2027, 1, 15, 8, tzinfo=UTC)
    assert parse_time("2027-01-15T08:00:00Z") == moment
    assert parse_time("2027-01-15T09:00:00+01:00") == moment
    assert parse_time("2027-01-15T08:00:00") == moment
    assert parse_time(None) is None and parse_time("soon") is None
