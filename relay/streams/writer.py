"""The fan-out writer: one atomic Lua step per routed stream, all in one round trip.

Each step is idempotent (it dedupes on the marks it is given), so retrying a whole
fan-out after ``NOSCRIPT`` or a lost connection can never produce a second entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from relay.streams.keys import dedupe_key

FANOUT_SCRIPT = files("relay.streams").joinpath("fanout.lua").read_bytes()
FANOUT_SHA = hashlib.sha1(FANOUT_SCRIPT, usedforsecurity=False).hexdigest()


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
        self._maxlen = str(maxlen)
        self._window_ms = str(dedupe_ttl * 1000)

    async def load_script(self) -> None:
        await self._redis.script_load(FANOUT_SCRIPT)

    async def write(
        self, entry: Entry, streams: Sequence[str], marks: Sequence[str] = ()
    ) -> list[str | None]:
        """Write ``entry`` to every stream that has not seen it; per stream, its new entry
        id or ``None`` for "already there". Returns only once every stream holds it.

        ``marks`` are the dedupe marks; the message id when empty.
        """
        marks = marks or (entry.id,)
        tail = [self._window_ms, self._maxlen, str(len(marks)), *marks, *entry.fields()]
        results = await self._run(streams, tail)
        if any(isinstance(result, NoScriptError) for result in results):
            # Redis lost its script cache (restart, failover, SCRIPT FLUSH): load it and run
            # the whole fan-out again; streams already written answer "already there".
            await self.load_script()
            results = await self._run(streams, tail)
        outcome: list[str | None] = []
        for result in results:
            if isinstance(result, Exception):
                raise result
            outcome.append(result.decode() if isinstance(result, bytes) else None)
        return outcome

    async def _run(self, streams: Sequence[str], tail: list[str | bytes]) -> list[object]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.execute_command("EVALSHA", FANOUT_SHA, 2, stream, dedupe_key(stream), *tail)
            return list(await pipe.execute(raise_on_error=False))
