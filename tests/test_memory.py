"""RELAY_MEMORY_LIMIT and the body budget that follows from it (relay.memory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.memory import (
    DEFAULT_MEMORY_LIMIT,
    HEAD_BYTES,
    RESERVED_BYTES,
    MemoryPlan,
    MiB,
    cgroup_memory_limit,
    parse_size,
)
from tests.support.settings import problems, settings


@pytest.mark.parametrize(
    ("text", "size"),
    [("268435456", 268435456), ("256Mi", 256 * MiB), ("1Gi", 1024 * MiB), ("300M", 300_000_000),
     ("512ki", 512 * 1024), (" 64Mi ", 64 * MiB)],
)  # fmt: skip
def test_sizes_are_read_as_kubernetes_writes_them(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "256 MiB", "-1", "1.5Gi", "lots"])
def test_anything_else_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_the_cgroup_v2_limit_is_read(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("268435456\n")
    assert cgroup_memory_limit(tmp_path) == 256 * MiB


def test_an_unlimited_or_missing_cgroup_gives_no_limit(tmp_path: Path) -> None:
    assert cgroup_memory_limit(tmp_path) is None
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroup_memory_limit(tmp_path) is None


def test_the_cgroup_v1_limit_is_read_and_its_unlimited_value_ignored(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("536870912\n")
    assert cgroup_memory_limit(tmp_path) == 512 * MiB
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup_memory_limit(tmp_path) is None


def test_the_setting_takes_sizes_and_names_itself_when_wrong() -> None:
    assert settings(RELAY_MEMORY_LIMIT="512Mi").memory_limit == 512 * MiB
    assert settings(RELAY_MEMORY_LIMIT="268435456").memory_limit == 256 * MiB
    (problem,) = problems(RELAY_MEMORY_LIMIT="plenty")
    assert problem.startswith("RELAY_MEMORY_LIMIT")
    (problem,) = problems(RELAY_MEMORY_LIMIT="0")
    assert problem.startswith("RELAY_MEMORY_LIMIT")


def test_the_default_fits_the_manifests_limit() -> None:
    """Outside a container (no cgroup limit), the manifests' 256Mi."""
    if cgroup_memory_limit() is None:
        assert settings().memory_limit == DEFAULT_MEMORY_LIMIT
    plan = MemoryPlan(DEFAULT_MEMORY_LIMIT, 1, 1_048_576, 512)
    assert plan.body_budget == (256 * MiB - RESERVED_BYTES) // 2  # 80 MiB, not 512
    assert RESERVED_BYTES + 2 * plan.body_budget <= DEFAULT_MEMORY_LIMIT
    assert plan.problems() == []


def test_processes_share_the_limit() -> None:
    one, four = (MemoryPlan(1024 * MiB, n, 1_048_576, 512) for n in (1, 4))
    assert four.body_budget == (256 * MiB - RESERVED_BYTES) // 2
    assert one.body_budget == (1024 * MiB - RESERVED_BYTES) // 2


def test_the_budget_is_never_more_than_the_in_flight_bodies() -> None:
    plan = MemoryPlan(4096 * MiB, 1, 10_000, 4)
    assert plan.body_budget == 4 * (10_000 + HEAD_BYTES)


def test_a_limit_that_cannot_hold_one_body_still_serves_one_and_says_so() -> None:
    plan = MemoryPlan(100 * MiB, 1, 8 * MiB, 512)
    assert plan.body_budget == 8 * MiB + HEAD_BYTES
    (problem,) = plan.problems()
    assert "RELAY_MEMORY_LIMIT=104857600" in problem
    assert "RELAY_MAX_BODY_BYTES=8388608" in problem


def test_the_heap_is_trimmed_once_a_burst_has_let_go_and_not_before() -> None:
    from relay import allocator
    from relay.ingest.body import BodyBudget
    from relay.receiver.services import TRIM_AFTER_BYTES, return_memory_after_burst

    trims: list[bool] = []

    def trim() -> bool:
        trims.append(True)
        return True

    budget = BodyBudget(1024 * MiB)
    budget.take(TRIM_AFTER_BYTES + MiB)
    assert not return_memory_after_burst(budget, trim)  # still held: nothing to give back
    budget.give_back(MiB)
    assert not return_memory_after_burst(budget, trim)  # let go of less than the threshold
    budget.give_back(TRIM_AFTER_BYTES)
    assert return_memory_after_burst(budget, trim)
    assert trims == [True] and budget.peak == 0
    assert not return_memory_after_burst(budget, trim)  # once per burst
    assert allocator.can_trim() and isinstance(allocator.trim(), bool)  # glibc here
