"""A Redis lock for one public URL: replicas starting together make one create call.

``SET NX PX`` with a random token; extended while held; released (or extended) only by its
holder, through a compare-and-delete (compare-and-expire) Lua script. A holder that dies
stops extending, and the lock expires so another replica can take over.

A holder that was paused (a stopped process, a long GC, a slow network) may wake up after its
lock expired and was taken: :meth:`RedisLock.confirm` before each API call is how it finds
out, and stops, instead of acting next to the new holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import structlog

from relay.redis.client import Redis
from relay.redis.errors import RedisError
from relay.redis.scripts import LOCK_EXTEND, LOCK_RELEASE, run

log = structlog.get_logger("relay.lock")


class LockLost(Exception):
    """The lock expired or was taken while we believed we held it."""


class RedisLock:
    def __init__(self, redis: Redis, key: str, ttl: float = 30.0) -> None:
        self._redis = redis
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.token = secrets.token_hex(16)
        self.lost = False

    async def acquire(self) -> bool:
        return bool(await self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def extend(self) -> bool:
        return bool(await run(self._redis, LOCK_EXTEND, [self.key], [self.token, self.ttl_ms]))

    async def confirm(self) -> None:
        """Check that the lock is still ours, and extend it; :class:`LockLost` when not.
        Raises Redis errors: when Redis cannot say, the holder must not act either."""
        if self.lost or not await self.extend():
            self.lost = True
            raise LockLost(self.key)

    async def release(self) -> bool:
        return bool(await run(self._redis, LOCK_RELEASE, [self.key], [self.token]))

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[RedisLock]:
        """Hold an acquired lock: extend it every third of its TTL, release it at the end."""
        keeper = asyncio.create_task(self._keep())
        try:
            yield self
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            with contextlib.suppress(RedisError):
                await self.release()

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                if not await self.extend():
                    self.lost = True
                    log.error("lock_lost", key=self.key)
                    return
            except RedisError as exc:
                log.warning("lock_extend_failed", key=self.key, error=type(exc).__name__)
