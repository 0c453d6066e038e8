"""The one way a test waits: poll an observable state until it holds, or fail naming it.

Tests never sleep to let something happen; they wait for what they can see (a key gone, a
line logged, a port answering) with a deadline that only bounds a failure. Both forms here
share one failure message: what was awaited, for how long, and the last value (or error)
seen, so a red test says what never became true.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: Long enough for a loaded CI machine (2 cores, many suites); it only bounds a failure.
WITHIN = 20.0
INTERVAL = 0.02


class NeverHappened(AssertionError):
    """The awaited state did not hold before the deadline."""


class _Attempts:
    """The deadline and the last thing seen: what the failure message reports."""

    def __init__(self, what: str, within: float, ignoring: tuple[type[BaseException], ...]):
        self.what = what
        self.within = within
        self.ignoring = ignoring
        self.deadline = time.monotonic() + within
        self.last: object = None
        self.error: BaseException | None = None

    def seen(self, value: object) -> None:
        self.last, self.error = value, None

    def failed(self, error: BaseException) -> None:
        if not isinstance(error, self.ignoring):
            raise error
        self.error = error

    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    def failure(self, context: Callable[[], object] | None) -> NeverHappened:
        last = f"error {self.error!r}" if self.error is not None else f"value {self.last!r}"
        message = f"waited {self.within:g}s for {self.what}; last {last}"
        if context is not None:
            message += f"\n{context()}"
        return NeverHappened(message)


@overload
async def wait_for(
    condition: Callable[[], Awaitable[T]],
    *,
    what: str,
    within: float = ...,
    interval: float = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
    context: Callable[[], object] | None = ...,
) -> T: ...


@overload
async def wait_for(
    condition: Callable[[], T],
    *,
    what: str,
    within: float = ...,
    interval: float = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
    context: Callable[[], object] | None = ...,
) -> T: ...


async def wait_for(
    condition: Callable[[], Any],
    *,
    what: str,
    within: float = WITHIN,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (),
    context: Callable[[], object] | None = None,
) -> Any:
    """Return ``condition()``'s first truthy value; it may be sync or async.

    The event loop runs between attempts, so tasks under test make progress. Errors of the
    ``ignoring`` types count as "not yet" (a server still starting); ``context`` is called
    only on failure, its text appended (a process's output).
    """
    attempts = _Attempts(what, within, ignoring)
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
        except Exception as error:
            attempts.failed(error)
        else:
            if value:
                return value
            attempts.seen(value)
        if attempts.over():
            raise attempts.failure(context)
        await asyncio.sleep(interval)


def wait_for_sync(
    condition: Callable[[], T],
    *,
    what: str,
    within: float = WITHIN,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (),
    context: Callable[[], object] | None = None,
) -> T:
    """:func:`wait_for` for code outside an event loop (processes, servers, threads)."""
    attempts = _Attempts(what, within, ignoring)
    while True:
        try:
            value = condition()
        except Exception as error:
            attempts.failed(error)
        else:
            if value:
                return value
            attempts.seen(value)
        if attempts.over():
            raise attempts.failure(context)
        time.sleep(interval)
