"""The shape both intake loops share (reading new entries, taking over idle ones): wait
while an operator paused the group, for the breaker and for room, fetch no more than can
start now, recreate a vanished group, ride out a Redis outage, then hand what came to the
worker.

Fetching no more than can start now keeps entries waiting in Redis, where any consumer with
a free slot may take them, instead of in this process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from relay.redis.errors import RedisConnectionError, RedisTimeoutError, ResponseError

if TYPE_CHECKING:
    from relay.worker.runtime import Worker

TRANSIENT = (RedisConnectionError, RedisTimeoutError)
T = TypeVar("T")


class Stopping(Exception):
    """The worker stops before this entry's next step: it stays pending, for a takeover."""


def group_gone(exc: ResponseError) -> bool:
    """The group (or its whole stream) vanished: deleted, or Redis lost its data."""
    text = str(exc)
    return "NOGROUP" in text or text.startswith("UNBLOCKED")


async def intake_loop(
    worker: Worker,
    step: str,
    fetch: Callable[[int], Awaitable[T]],
    deliver: Callable[[T], Awaitable[None]],
) -> None:
    """Until the worker stops: ``fetch(room)`` then ``deliver`` what it found."""
    failures = 0
    while True:
        await worker.or_stop(worker.pause.wait_resumed())
        await worker.or_stop(worker.breaker.wait_closed())
        room = await worker.or_stop(worker.capacity.reserve())
        try:
            found = await fetch(room)
            failures = 0
        except ResponseError as exc:
            if not group_gone(exc):
                raise
            await worker.recreate_group()
            continue
        except TRANSIENT as exc:
            failures += 1
            await worker.pause_after_redis_error(step, exc, failures)
            continue
        finally:
            worker.capacity.unreserve(room)
        await deliver(found)
