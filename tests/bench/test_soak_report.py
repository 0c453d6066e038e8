"""The soak's verdicts (bench/soak_report.py): what counts as lost, doubled, explained, and
growing, on hand-made records."""

from __future__ import annotations

from pathlib import Path

from bench.soak_report import Handling, Kill, judge_group, judge_growth, read_ledger, slope_per_hour


def run(
    pid: int, message_id: str, started: float, done: float | None, entry: str = "1-0"
) -> Handling:
    return Handling("g", pid, message_id, entry, started, done)


def test_every_accepted_id_handled_once_is_a_clean_ledger() -> None:
    ledger = judge_group("g", {"a", "b"}, [run(1, "a", 1, 2), run(1, "b", 3, 4)], [])
    assert ledger.ok and ledger.handled == 2 and ledger.doubled == 0


def test_an_accepted_id_no_handler_finished_is_lost() -> None:
    ledger = judge_group("g", {"a", "b"}, [run(1, "a", 1, 2), run(2, "b", 3, None)], [])
    assert ledger.lost == ["b"] and not ledger.ok
    assert ledger.killed_mid_handler == 1


def test_a_double_after_its_holder_was_killed_is_explained() -> None:
    handlings = [run(1, "a", 10, 11), run(2, "a", 30, 31)]
    ledger = judge_group("g", {"a"}, handlings, [Kill("g", 1, at=12, held=3)])
    assert ledger.ok and ledger.doubled == 1 and ledger.explained == 1


def test_a_double_without_a_kill_of_its_first_holder_is_unexplained() -> None:
    handlings = [run(1, "a", 10, 11), run(2, "a", 30, 31)]
    killed_before = [Kill("g", 1, at=5, held=1)]  # killed before it took the entry
    ledger = judge_group("g", {"a"}, handlings, killed_before)
    assert ledger.unexplained == ["a"] and not ledger.ok
    other_group = [Kill("other", 1, at=12, held=1)]
    assert judge_group("g", {"a"}, handlings, other_group).unexplained == ["a"]


def test_two_stream_entries_for_one_id_fail_even_when_each_is_handled_once() -> None:
    handlings = [run(1, "a", 1, 2, entry="1-0"), run(1, "a", 3, 4, entry="2-0")]
    ledger = judge_group("g", {"a"}, handlings, [])
    assert ledger.extra_entries == ["a"] and not ledger.ok


def test_a_handled_id_the_sender_never_had_answered_fails() -> None:
    ledger = judge_group("g", {"a"}, [run(1, "a", 1, 2), run(1, "x", 3, 4)], [])
    assert ledger.unknown == ["x"] and not ledger.ok


def test_ledger_files_pair_starts_with_their_ends(tmp_path: Path) -> None:
    (tmp_path / "g.g-1.41.log").write_text("S a 1-0 1 10.0 5\nS b 2-0 1 10.5 6\nD a 1-0 1 11.0 5\n")
    (tmp_path / "g.g-0.42.log").write_text("S b 2-0 2 20.0 6\nD b 2-0 2 20.1 6\n")
    runs = read_ledger(tmp_path)["g"]
    finished = {(r.pid, r.message_id): r.done for r in runs}
    assert finished == {(41, "a"): 11.0, (41, "b"): None, (42, "b"): 20.1}


def test_slope_is_per_hour_and_flat_series_have_none() -> None:
    assert slope_per_hour([(0, 5), (1800, 5), (3600, 5)]) == 0
    assert abs(slope_per_hour([(0, 0), (60, 1), (120, 2)]) - 60) < 1e-9
    assert slope_per_hour([(0, 1), (1, 100)]) == 0  # too few points to judge


def test_growth_ignores_warm_up_and_fails_a_steady_climb() -> None:
    climbing = [{"t": float(t), "p:fds": float(t // 10)} for t in range(0, 3600, 10)]
    assert [g.ok for g in judge_growth(climbing, warmup=300)] == [False]  # 360 fds an hour
    spike_then_flat = [
        {"t": float(t), "p:fds": 500.0 if t < 300 else 20.0} for t in range(0, 3600, 10)
    ]
    assert [g.ok for g in judge_growth(spike_then_flat, warmup=300)] == [True]
    assert judge_growth(climbing, warmup=300, limit_factor=40)[0].ok  # 400 an hour allowed


def test_a_slope_over_the_limit_within_its_noise_is_not_growth() -> None:
    # Alternating 0/100 every 10 s with one high sample at the end: a slope, but noise.
    noisy = [{"t": float(t), "p:fds": 100.0 * ((t // 10) % 2)} for t in range(0, 120, 10)]
    noisy.append({"t": 120.0, "p:fds": 100.0})
    (verdict,) = judge_growth(noisy, warmup=0)
    assert verdict.slope > verdict.limit and verdict.ok
    steady = [{"t": float(t), "p:fds": t / 10} for t in range(0, 120, 10)]  # 360 an hour
    assert not judge_growth(steady, warmup=0)[0].ok


def test_a_double_right_after_a_failover_is_explained_and_long_after_is_not() -> None:
    handlings = [run(1, "a", 10, 11), run(2, "a", 30, 31)]
    assert judge_group("g", {"a"}, handlings, [], failovers=[13.0]).explained == 1
    assert judge_group("g", {"a"}, handlings, [], failovers=[60.0]).unexplained == ["a"]
    assert judge_group("g", {"a"}, handlings, [], failovers=[10.5]).unexplained == ["a"]
