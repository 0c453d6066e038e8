"""The waiting helper: what it returns, when it gives up, and what a failure says."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest

from tests.support.waiting import NeverHappened, wait_for, wait_for_sync


async def test_returns_the_first_truthy_value_of_a_sync_condition() -> None:
    values = iter([0, [], "ready", "later"])
    assert await wait_for(lambda: next(values), what="a value") == "ready"


async def test_awaits_an_async_condition() -> None:
    calls = itertools.count()

    async def third_call() -> int | None:
        n = next(calls)
        return n if n == 2 else None

    assert await wait_for(third_call, what="the third call") == 2


async def test_the_event_loop_runs_between_attempts() -> None:
    done = asyncio.Event()
    asyncio.get_running_loop().call_soon(done.set)
    assert await wait_for(done.is_set, what="the callback ran")


async def test_a_deadline_of_zero_looks_exactly_once() -> None:
    seen = []

    def look() -> bool:
        seen.append(True)
        return len(seen) > 1

    with pytest.raises(NeverHappened):
        await wait_for(look, what="a second look", within=0)
    assert seen == [True]
    assert await wait_for(lambda: "now", what="already true", within=0) == "now"


async def test_the_failure_names_what_was_awaited_and_the_last_value() -> None:
    counter = itertools.count()
    with pytest.raises(NeverHappened) as failure:
        await wait_for(lambda: next(counter) < 0, what="a negative count", within=0.05)
    assert str(failure.value).startswith("waited 0.05s for a negative count; last value False")
    assert isinstance(failure.value, AssertionError)  # pytest shows it as a failed assertion


async def test_ignored_errors_mean_not_yet_and_the_last_one_is_reported() -> None:
    attempts = itertools.count()

    def flaky() -> str:
        if next(attempts) < 2:
            raise ConnectionRefusedError("not listening yet")
        return "up"

    assert await wait_for(flaky, what="the server", ignoring=(OSError,)) == "up"

    def down() -> str:
        raise ConnectionRefusedError("not listening")

    with pytest.raises(NeverHappened, match=r"last error ConnectionRefusedError"):
        await wait_for(down, what="the server", ignoring=(OSError,), within=0.05)


async def test_other_errors_end_the_wait_at_once() -> None:
    attempts = itertools.count()

    def broken() -> bool:
        next(attempts)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await wait_for(broken, what="never", ignoring=(OSError,), within=5)
    assert next(attempts) == 1  # one attempt: a bug is not a state to wait out


async def test_context_is_appended_on_failure_only() -> None:
    asked = []

    def context() -> str:
        asked.append(True)
        return "process output: listening on :0"

    assert await wait_for(lambda: True, what="x", context=context)
    assert asked == []
    with pytest.raises(NeverHappened, match="process output: listening on :0"):
        await wait_for(lambda: False, what="x", context=context, within=0)


def test_the_sync_form_waits_for_another_thread() -> None:
    done = threading.Event()
    threading.Timer(0.01, done.set).start()
    assert wait_for_sync(done.is_set, what="the thread's flag")
    with pytest.raises(NeverHappened, match=r"waited 0s for nothing; last value None"):
        wait_for_sync(lambda: None, what="nothing", within=0)


def test_the_sync_form_ignores_only_the_errors_named() -> None:
    attempts = itertools.count()

    def starting() -> str:
        if next(attempts) == 0:
            raise OSError("starting")
        return "up"

    assert wait_for_sync(starting, what="up", ignoring=(OSError,)) == "up"
    with pytest.raises(ValueError):
        wait_for_sync(lambda: int("x"), what="a number", ignoring=(OSError,))
