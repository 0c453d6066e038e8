"""Consumer-aware retention: streams are trimmed towards their targets, never below what a
consumer group still needs.

``XADD … MAXLEN ~`` trims whatever the groups have read or not. Instead, appends never
trim, and a background trimmer in every relay process runs ``trim.lua`` on each stream
every few seconds. The script works out the floor (the lowest id a group has not read, or
has read and not acknowledged) and trims only below it, in one atomic step, so a group
created or moved meanwhile is always seen. Where MAXLEN cuts comes from position marks the
script keeps beside the stream (no scan), and big removals go in bounded chunks, so no call
holds Redis for more than a few milliseconds. Trimmers of several processes and replicas may
overlap: each call is atomic, and the second finds nothing left to do.

Only the hard cap (``RELAY_STREAM_HARD_MAXLEN``) removes entries at or above the floor; each
one is counted and logged.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter

from relay.redis.client import Redis
from relay.redis.errors import RedisError
from relay.redis.keys import trim_marks_key
from relay.redis.scripts import TRIM, run

INTERVAL_SECONDS = 5.0  # with the default settings a stream shrinks back within ~10 s
# Entries one script call may scan when no mark tells where MAXLEN cuts (a stream over its
# target before its first marks): bounds how long one call holds Redis (a few ms).
SCAN_BUDGET = 500
# Calls per stream and pass at most (each removes up to 20 x SCAN_BUDGET entries): a
# backstop, far above what any catch-up needs.
MAX_CALLS = 10_000


@dataclass(frozen=True)
class Retention:
    """The targets of every stream; 0 switches a target off."""

    maxlen: int
    max_age_seconds: int = 0
    hard_maxlen: int = 0


@dataclass(frozen=True)
class Trimmed:
    """What trimming one stream did: entries removed, of them the ones the hard cap took
    from a group that still needed them, and the floor (``None``: no group needs any)."""

    stream: str
    removed: int
    dropped: int
    floor: str | None


class Trimmer:
    def __init__(
        self,
        redis: Redis,
        retention: Retention,
        streams: Callable[[], Iterable[str]],
        *,
        dropped: Counter | None = None,
        interval: float = INTERVAL_SECONDS,
        budget: int = SCAN_BUDGET,
    ) -> None:
        self._redis = redis
        self._args = (retention.maxlen, retention.max_age_seconds * 1000, retention.hard_maxlen)
        self._streams = streams
        self._dropped = dropped
        self.interval = interval
        self._budget = budget

    async def trim(self, stream: str) -> Trimmed:
        """Trim one stream; a call that ran out of budget (scan or removal) is followed by
        another until the targets are met."""
        removed = dropped = 0
        for _ in range(MAX_CALLS):
            reply = await run(
                self._redis, TRIM, [stream, trim_marks_key(stream)], [*self._args, self._budget]
            )
            removed += int(reply[0])
            dropped += int(reply[1])
            if not int(reply[2]):
                break
        floor = reply[3].decode() if isinstance(reply[3], bytes) else str(reply[3])
        result = Trimmed(stream, removed, dropped, floor or None)
        if dropped:
            if self._dropped is not None:
                self._dropped.labels(stream).inc(dropped)
            # Looked up per call: a module-level logger keeps the first configuration it met.
            structlog.get_logger("relay.trim").error(
                "stream_trimmed_unread",
                stream=stream,
                dropped=dropped,
                floor=result.floor,
                hard_maxlen=self._args[2],
            )
        return result

    async def trim_all(self) -> list[Trimmed]:
        """One pass over every stream; a Redis error skips the stream until the next pass."""
        done = []
        for stream in sorted(set(self._streams())):
            try:
                done.append(await self.trim(stream))
            except RedisError as exc:
                structlog.get_logger("relay.trim").warning(
                    "stream_trim_failed", stream=stream, error=type(exc).__name__
                )
        return done

    async def run(self) -> None:
        """Trim every ``interval`` seconds (jittered, so replicas spread out) until cancelled."""
        while True:
            await asyncio.sleep(self.interval * random.uniform(0.8, 1.0))
            await self.trim_all()
