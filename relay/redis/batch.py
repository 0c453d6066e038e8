"""Micro-batching: the commands of deliveries that arrive together share one round trip.

While one batch is on the wire, new deliveries queue up; when it returns, everything that
queued goes out as the next batch: one write and one read on one connection, however many
requests. Under light load a batch is one delivery; under heavy load it grows by itself, and
the Redis client's per-command overhead is paid once per batch instead of per request.
Each delivery still gets its own outcome; a Redis error fails only the batch it hit.
With replica acknowledgement on, the batch ends with the fence and ``WAIT`` (see
``replication``): one ``WAIT`` per batch, in the same round trip.

This is the one place that drives redis-py's connections directly (``get_connection``,
``send_packed_command``, ``read_response``): ``.ci/redis_py_range.sh`` runs its tests at the
lowest and the highest redis-py that pyproject.toml allows.
"""

from __future__ import annotations

import asyncio
import math

from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relay.redis.replication import ReplicaAck
from relay.redis.scripts import Script, reloading

Reply = object


class Batcher:
    """Runs RESP-encoded calls of ``script`` (loaded again on ``NOSCRIPT``: only idempotent
    scripts belong here), each delivery's in the next round trip."""

    def __init__(self, redis: Redis, script: Script, ack: ReplicaAck | None = None) -> None:
        self._redis = redis
        self._script = script
        self._ack = ack
        self._ack_commands = ack.encoded() if ack is not None else b""
        self._queue: list[tuple[bytes, asyncio.Future[Reply]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # for tests and curiosity: how many round trips were made

    async def run(self, command: bytes) -> Reply:
        """Run one RESP-encoded command; its reply. Raises its error reply, the Redis error
        of its batch, or the batch's replication error."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        try:
            await asyncio.sleep(0)  # let the requests of this loop iteration queue up
            while self._queue:
                batch, self._queue = self._queue, []
                await self._flush(batch)
        finally:
            self._flusher = None

    async def _flush(self, batch: list[tuple[bytes, asyncio.Future[Reply]]]) -> None:
        commands = [command for command, _ in batch]
        try:
            results = await reloading(self._redis, self._script, lambda: self._round_trip(commands))
        except Exception as exc:  # the connection or the server failed: this batch only
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        unconfirmed: Exception | None = None
        if self._ack is not None:
            *results, fence, acknowledged = results
            try:
                self._ack.check(fence, acknowledged)
            except Exception as exc:
                unconfirmed = exc
        for (_, future), reply in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):  # its own error first, as before the WAIT
                future.set_exception(reply)
            elif unconfirmed is not None:
                future.set_exception(unconfirmed)
            else:
                future.set_result(reply)

    async def _round_trip(self, commands: list[bytes]) -> list[object]:
        """Send every command in one write and read every reply, on one pooled connection,
        under one timeout for the whole batch (plus the ``WAIT``'s own)."""
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        self.batches += 1
        replies = len(commands)
        budget = connection.socket_timeout
        if self._ack is not None:
            replies += 2
            if budget is not None:
                budget += self._ack.timeout_s
        packed = b"".join(commands if self._ack is None else [*commands, self._ack_commands])
        demoted = False
        try:
            await connection.send_packed_command(packed, check_health=False)
            results: list[object] = []
            try:
                async with asyncio.timeout(budget):
                    for _ in range(replies):
                        try:
                            results.append(await connection.read_response(timeout=math.inf))
                        except ResponseError as exc:  # an error reply: this command's outcome
                            results.append(exc)
                            demoted = demoted or isinstance(exc, ReadOnlyError)
            except TimeoutError:
                raise RedisTimeoutError("Timeout reading a batch of appends") from None
            if demoted:  # a replica now: reconnect, which asks Sentinel (or DNS) anew
                await connection.disconnect()
            return results
        except BaseException:
            await connection.disconnect()  # its state is unknown: never reuse it
            raise
        finally:
            await pool.release(connection)
