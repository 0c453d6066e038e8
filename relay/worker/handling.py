"""One handler call and how it went: the only place a handler's exceptions are read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from relay.worker.controls import Reject, Retry
from relay.worker.event import Event


@dataclass(frozen=True, slots=True)
class Outcome:
    handled: bool
    error: str = ""
    rejected: bool = False
    retry_after: float | None = None
    timed_out: bool = False
    # What the handler raised (its span's exception event); not part of the outcome's value.
    exception: BaseException | None = field(default=None, compare=False, repr=False)


async def call_handler(
    handler: Callable[[Event], Awaitable[Any]], event: Event, handler_timeout: float | None
) -> Outcome:
    """Run ``handler`` once, within ``handler_timeout`` seconds when there is one."""
    timeout = asyncio.timeout(handler_timeout) if handler_timeout else None
    try:
        if timeout is None:
            await handler(event)
        else:
            async with timeout:
                await handler(event)
    except Reject as exc:
        return Outcome(False, f"Reject: {exc.reason}", rejected=True, exception=exc)
    except Retry as exc:
        return Outcome(False, f"Retry: {exc}", retry_after=exc.after, exception=exc)
    except TimeoutError as exc:
        if timeout is not None and timeout.expired():
            return Outcome(
                False,
                f"HandlerTimeout: ran longer than {handler_timeout}s",
                timed_out=True,
                exception=exc,
            )
        return Outcome(False, f"{type(exc).__name__}: {exc}", exception=exc)
    except Exception as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}", exception=exc)
    return Outcome(True)
