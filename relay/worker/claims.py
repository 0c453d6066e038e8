"""Ownership of pending entries: heartbeats, reclaims for retries, takeovers of the dead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.redis.client import Redis
from relay.redis.scripts import KEEP_CLAIMED, RECLAIM, run

# Entry ids per keep-claimed call: far below Lua's unpack limit (~8k arguments).
KEEP_BATCH = 1000
START = "0-0"
# Our own pending entries that may sit between the claimed ids in the pending list.
PENDING_SLACK = 100_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Kept:
    lost: list[str]  # no longer pending on us: acknowledged, or taken over by another
    gone: list[str]  # message trimmed or deleted while we held it (acknowledged now)


@dataclass(frozen=True)
class Claimed:
    entry_id: str
    fields: dict[bytes, bytes]
    deliveries: int


@dataclass(frozen=True)
class TakeOverRound:
    claimed: list[Claimed]
    gone: list[str]  # pending ids whose message was trimmed or deleted (acknowledged)
    finished: bool  # the scan of the pending list reached its end


class Claims:
    def __init__(self, redis: Redis, stream: str, group: str, consumer: str) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._cursor = START

    async def keep(self, entry_ids: Sequence[str]) -> Kept:
        """Heartbeat the entries we hold, in batches whatever their number."""
        lost: list[str] = []
        gone: list[str] = []
        for start in range(0, len(entry_ids), KEEP_BATCH):
            batch = entry_ids[start : start + KEEP_BATCH]
            reply: Any = await run(
                self._redis, KEEP_CLAIMED, [self._stream], [self._group, self._consumer, *batch]
            )
            lost += [_text(item) for item in reply[0]]
            gone += [_text(item) for item in reply[1]]
        return Kept(lost, gone)

    async def reclaim(self, entry_id: str) -> int:
        """The entry's new delivery count, 0 if no longer ours, -1 if its message is gone."""
        args = [self._group, self._consumer, entry_id]
        return int(await run(self._redis, RECLAIM, [self._stream], args))

    async def take_over(self, min_idle_ms: int, count: int) -> TakeOverRound:
        """Claim up to ``count`` entries idle for ``min_idle_ms`` (dead consumers' entries),
        continuing the previous round's scan of the pending list (``XAUTOCLAIM``'s cursor):
        a long pending list is walked through, not re-read from its head every round."""
        reply: Any = await self._redis.xautoclaim(
            self._stream, self._group, self._consumer, min_idle_ms, self._cursor, count=count
        )
        cursor, claimed, *rest = reply
        self._cursor = _text(cursor)
        # Deleted messages: listed apart since Redis 7, as nil entries before.
        gone = [_text(item) for item in (rest[0] if rest else [])]
        gone += [_text(entry_id) for entry_id, fields in claimed if fields is None]
        if gone:
            await self._redis.xack(self._stream, self._group, *gone)
        present = [(_text(entry_id), fields) for entry_id, fields in claimed if fields is not None]
        finished = self._cursor == START
        if not present:
            return TakeOverRound([], gone, finished)
        ids = [entry_id for entry_id, _ in present]
        pending: Any = await self._redis.xpending_range(
            self._stream, self._group, min=ids[0], max=ids[-1], count=len(ids) + PENDING_SLACK,
            consumername=self._consumer,
        )  # fmt: skip
        counts = {_text(item["message_id"]): int(item["times_delivered"]) for item in pending}
        taken = [Claimed(entry_id, dict(fields), counts.get(entry_id, 1))
                 for entry_id, fields in present]  # fmt: skip
        return TakeOverRound(taken, gone, finished)

    def restart_scan(self) -> None:
        self._cursor = START
