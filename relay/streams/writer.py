"""The ingest fan-out: one idempotent append per routed stream, all in one round trip
(shared with the deliveries that arrive at the same time: see ``batch``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster

from relay.streams.append import append_command, encode, encoded_append, load_script, run_appends
from relay.streams.batch import AppendBatcher


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as the contract defines it; every field is a string."""

    id: str
    event: str
    payload: bytes
    received_at: int
    extraction_id: str
    workflow_id: str

    def fields(self) -> list[str | bytes]:
        return [
            "id", self.id,
            "event", self.event,
            "payload", self.payload,
            "received_at", str(self.received_at),
            "extraction_id", self.extraction_id,
            "workflow_id", self.workflow_id,
        ]  # fmt: skip


class FanoutWriter:
    def __init__(self, redis: Redis, *, maxlen: int, dedupe_ttl: int) -> None:
        self._redis = redis
        self.batcher = AppendBatcher(redis)
        self._maxlen = maxlen
        self._window_ms = dedupe_ttl * 1000

    async def load_script(self) -> None:
        await load_script(self._redis)

    async def write(
        self, entry: Entry, streams: Sequence[str], marks: Sequence[str] = ()
    ) -> list[str | None]:
        """Write ``entry`` to every stream that has not seen it; per stream, its new entry
        id or ``None`` for "already there". Returns only once every stream holds it.

        ``marks`` are the dedupe marks; the message id when empty.
        """
        marks = marks or (entry.id,)
        if isinstance(self._redis, RedisCluster):
            # Streams on several shards: the cluster pipeline makes one round trip per node.
            commands = [
                append_command(s, marks, entry.fields(), window_ms=self._window_ms,
                               maxlen=self._maxlen)
                for s in streams
            ]  # fmt: skip
            return await run_appends(self._redis, commands)
        tail = [self._window_ms, self._maxlen, len(marks), *marks, *entry.fields()]
        shared = b"".join(encode(tail))  # the payload is encoded once, whatever the streams
        return await self.batcher.run([encoded_append(s, shared, len(tail)) for s in streams])
