"""Commands in one pipelined round trip (one per node on a cluster), replies and error
replies as values, in order."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from relay.redis.resp import Command


async def pipelined(redis: Redis, commands: Sequence[Command]) -> list[object]:
    async with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))
