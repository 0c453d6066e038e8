"""Acknowledgements of handlers that finish together, coalesced into one ``XACK``."""

from __future__ import annotations

import asyncio
from typing import Any

from relay.redis.client import Redis


class AckBatcher:
    """Each caller still returns only once its own entry is acknowledged (or sees the
    error)."""

    def __init__(self, redis: Redis, stream: str, group: str) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group
        self._batch: list[str] = []
        self._done: asyncio.Future[None] | None = None

    async def ack(self, entry_id: str) -> None:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._flush)
        self._batch.append(entry_id)
        await asyncio.shield(self._done)

    def _flush(self) -> None:
        batch, done = self._batch, self._done
        self._batch, self._done = [], None
        assert done is not None
        task = asyncio.ensure_future(self._redis.xack(self._stream, self._group, *batch))

        def settle(finished: asyncio.Future[Any]) -> None:
            if finished.cancelled():
                done.cancel()
            elif (exc := finished.exception()) is not None:
                done.set_exception(exc)
            else:
                done.set_result(None)

        task.add_done_callback(settle)
