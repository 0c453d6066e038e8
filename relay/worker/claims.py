"""Ownership of pending entries: heartbeats, reclaims for retries, takeovers of the dead."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _script(redis: Redis, name: str) -> AsyncScript:
    return redis.register_script(files("relay.worker").joinpath(name).read_bytes())


class Claims:
    def __init__(self, redis: Redis, stream: str, group: str, consumer: str) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._keep = _script(redis, "keep_claimed.lua")
        self._reclaim = _script(redis, "reclaim.lua")

    async def keep(self, entry_ids: Sequence[str]) -> list[str]:
        """Heartbeat the entries we hold; returns those that are no longer ours."""
        if not entry_ids:
            return []
        lost = await self._keep(keys=[self._stream], args=[self._group, self._consumer, *entry_ids])
        return [item.decode() for item in lost]

    async def reclaim(self, entry_id: str) -> int:
        """The entry's new delivery count, 0 if no longer ours, -1 if its message is gone."""
        return int(
            await self._reclaim(keys=[self._stream], args=[self._group, self._consumer, entry_id])
        )

    async def take_over(
        self, min_idle_ms: int, count: int
    ) -> list[tuple[str, dict[bytes, bytes], int]]:
        """Claim up to ``count`` entries idle for ``min_idle_ms`` (dead consumers' entries),
        with their delivery counts; entries whose message is gone are acknowledged."""
        reply: Any = await self._redis.xautoclaim(
            self._stream, self._group, self._consumer, min_idle_ms, "0-0", count=count
        )
        _, claimed, deleted = reply
        if deleted:
            await self._redis.xack(self._stream, self._group, *deleted)
        claimed = [(entry_id, fields) for entry_id, fields in claimed if fields is not None]
        if not claimed:
            return []
        ids = [entry_id.decode() for entry_id, _ in claimed]
        pending: Any = await self._redis.xpending_range(
            self._stream, self._group, min=ids[0], max=ids[-1], count=len(ids) + 1000,
            consumername=self._consumer,
        )  # fmt: skip
        counts = {item["message_id"].decode(): int(item["times_delivered"]) for item in pending}
        return [
            (entry_id, dict(fields), counts.get(entry_id, 1))
            for entry_id, (_, fields) in zip(ids, claimed, strict=True)
        ]
