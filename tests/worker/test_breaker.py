"""Outage detection and the hold, on their own (no Redis): the rules at their edges."""

from __future__ import annotations

import asyncio

import pytest

from relay.worker.breaker import Breaker, Verdict
from relay.worker.capacity import Capacity


async def settle() -> None:
    """Let every task that can run reach its next wait (deterministic in asyncio)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_threshold_minus_one_failing_entries_then_a_success_never_pause() -> None:
    breaker = Breaker(threshold=3, probe_interval=0.01)
    for _ in range(4):
        assert breaker.failed("a") is Verdict.COUNTED
        assert breaker.failed("b") is Verdict.COUNTED
        assert breaker.succeeded() is False
    assert not breaker.is_open


async def test_threshold_different_entries_failing_in_a_row_pause() -> None:
    breaker = Breaker(threshold=3, probe_interval=0.01)
    assert [breaker.failed(e) for e in ("a", "b", "a", "b")] == [Verdict.COUNTED] * 4
    assert breaker.failed("c") is Verdict.OUTAGE  # the third distinct entry: an outage
    assert breaker.is_open
    assert breaker.failed("d") is Verdict.OUTAGE  # while open, nothing counts


async def test_one_entry_failing_for_ever_is_a_bad_entry_not_an_outage() -> None:
    breaker = Breaker(threshold=2, probe_interval=0.01)
    assert all(breaker.failed("poison") is Verdict.COUNTED for _ in range(100))
    assert not breaker.is_open


async def test_threshold_0_never_pauses() -> None:
    breaker = Breaker(threshold=0, probe_interval=0.01)
    assert all(breaker.failed(str(n)) is Verdict.COUNTED for n in range(100))


async def test_while_open_one_probe_at_a_time_and_a_success_lets_everyone_through() -> None:
    breaker = Breaker(threshold=1, probe_interval=0.01)
    breaker.failed("a")
    assert await breaker.admit() is True  # the first probe, once the interval passed
    waiting = [asyncio.create_task(breaker.admit()) for _ in range(3)]
    await settle()
    assert not any(task.done() for task in waiting)  # one probe at a time

    assert breaker.failed("a") is Verdict.OUTAGE  # the probe failed: still open
    breaker.release()
    second = await asyncio.wait_for(asyncio.shield(waiting[0]), 5)
    assert second is True and not any(task.done() for task in waiting[1:])

    assert breaker.succeeded() is True  # the probe succeeded: closed
    breaker.release()
    assert await asyncio.wait_for(asyncio.gather(*waiting[1:]), 5) == [False, False]
    assert not breaker.is_open and await breaker.admit() is False


async def test_a_probe_cancelled_while_waiting_lets_the_next_one_in() -> None:
    breaker = Breaker(threshold=1, probe_interval=0.01)
    breaker.failed("a")
    first = await breaker.admit()
    cancelled = asyncio.create_task(breaker.admit())
    await settle()
    cancelled.cancel()
    breaker.release()
    assert first is True and await asyncio.wait_for(breaker.admit(), 5) is True


async def test_the_hold_waits_at_its_cap_and_frees_on_release() -> None:
    capacity = Capacity(concurrency=2, max_held=3)
    assert await capacity.reserve() == 2  # room 3, but only 2 can start now
    for entry_id in ("a", "b"):
        assert capacity.hold(entry_id)
    capacity.unreserve(2)
    assert await capacity.reserve() == 1 and capacity.hold("c")
    capacity.unreserve(1)
    assert not capacity.hold("a")  # held already: never run twice
    waiting = asyncio.create_task(capacity.reserve())
    await settle()
    assert not waiting.done()  # at the cap: 3 held
    capacity.release("a")
    assert await asyncio.wait_for(waiting, 5) == 1


async def test_a_reservation_keeps_a_second_fetch_from_filling_the_same_room() -> None:
    capacity = Capacity(concurrency=4, max_held=4)
    assert await capacity.reserve() == 4  # a read in progress
    second = asyncio.create_task(capacity.reserve())  # a take-over at the same time
    await settle()
    assert not second.done()
    for entry_id in ("a", "b"):  # the read brought two entries
        capacity.hold(entry_id)
    capacity.unreserve(4)
    assert await asyncio.wait_for(second, 5) == 2


async def test_a_reservation_leaves_the_slots_to_the_other_fetch() -> None:
    capacity = Capacity(concurrency=4, max_held=40)
    assert await capacity.reserve() == 4  # a read blocked on a quiet stream
    assert await asyncio.wait_for(capacity.reserve(), 5) == 4  # the take-over goes on


async def test_slots_bound_what_runs() -> None:
    capacity = Capacity(concurrency=1, max_held=5)
    assert capacity.try_acquire_slot() and not capacity.try_acquire_slot()
    waiting = asyncio.create_task(capacity.acquire_slot())
    await settle()
    assert not waiting.done() and capacity.room == 5
    capacity.release_slot()
    await asyncio.wait_for(waiting, 5)
    assert capacity.running == 1


def test_a_cap_below_the_concurrency_is_refused() -> None:
    with pytest.raises(ValueError, match="max_held >= concurrency"):
        Capacity(concurrency=10, max_held=5)


async def test_with_nothing_left_to_probe_the_pause_ends() -> None:
    breaker = Breaker(threshold=1, probe_interval=60)
    breaker.failed("a")
    waiting = asyncio.create_task(breaker.wait_closed())
    breaker.nothing_to_probe()
    await asyncio.wait_for(waiting, 5)
    assert not breaker.is_open
    assert breaker.failed("b") is Verdict.OUTAGE  # a new failure opens it again
