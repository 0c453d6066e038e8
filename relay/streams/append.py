"""Idempotent stream appends: the one Lua step every writer of this package uses.

The ingest fan-out, the dead-letter queue and replay all append "once per mark": running the
same append again (after ``NOSCRIPT``, a lost connection, or a crash before the answer) can
never produce a second entry, which is what makes every retry here safe.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from relay.streams.keys import dedupe_key

SCRIPT = files("relay.streams").joinpath("append_once.lua").read_bytes()
SHA = hashlib.sha1(SCRIPT, usedforsecurity=False).hexdigest()

Fields = Sequence[str | bytes]
Command = tuple[str | bytes | int, ...]


def append_command(
    stream: str, marks: Sequence[str], fields: Fields, *, window_ms: int, maxlen: int
) -> Command:
    """The ``EVALSHA`` arguments appending ``fields`` to ``stream`` unless a mark was seen."""
    return (
        "EVALSHA", SHA, 2, stream, dedupe_key(stream),
        window_ms, maxlen, len(marks), *marks, *fields,
    )  # fmt: skip


def encode(args: Sequence[str | bytes | int]) -> list[bytes]:
    """RESP bulk strings of ``args`` (without the array header): pieces to join later."""
    out: list[bytes] = []
    for arg in args:
        data = (
            arg.encode() if isinstance(arg, str) else b"%d" % arg if isinstance(arg, int) else arg
        )
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return out


@functools.lru_cache(maxsize=4096)
def _append_head(stream: str) -> bytes:
    """The fixed part of a stream's append: the script, the key count and its two keys."""
    return b"".join(encode(("EVALSHA", SHA, 2, stream, dedupe_key(stream))))


def encoded_append(stream: str, shared_tail: bytes, tail_count: int) -> bytes:
    """One append command in RESP, ``shared_tail`` being the encoded arguments after the
    keys (window, maxlen, marks, fields), encoded once for every stream of a fan-out."""
    return b"*%d\r\n%s%s" % (5 + tail_count, _append_head(stream), shared_tail)


async def load_script(redis: Redis) -> None:
    await redis.script_load(SCRIPT)


async def reloading_script(
    redis: Redis, round_trip: Callable[[], Awaitable[list[object]]]
) -> list[object]:
    """The replies of ``round_trip``, run once more after loading the script when Redis
    lost its script cache (restart, failover, SCRIPT FLUSH). Safe because appends are
    idempotent: the ones that went through the first time answer "already there"."""
    results = await round_trip()
    if any(isinstance(result, NoScriptError) for result in results):
        await load_script(redis)
        results = await round_trip()
    return results


async def run_appends(redis: Redis, commands: Sequence[Command]) -> list[str | None]:
    """Run appends in one pipelined round trip; per command the new entry id, or ``None``
    when it was already there. Raises the first Redis error any of them met."""
    return decode_results(await reloading_script(redis, lambda: _pipeline(redis, commands)))


def decode_results(results: Sequence[object]) -> list[str | None]:
    """Replies of append commands as new entry ids (``None``: already there); the first
    error reply is raised."""
    outcome: list[str | None] = []
    for result in results:
        if isinstance(result, Exception):
            raise result
        outcome.append(result.decode() if isinstance(result, bytes) else None)
    return outcome


async def append_once(
    redis: Redis, stream: str, marks: Sequence[str], fields: Fields, *, window_ms: int, maxlen: int
) -> str | None:
    command = append_command(stream, marks, fields, window_ms=window_ms, maxlen=maxlen)
    [result] = await run_appends(redis, [command])
    return result


async def _pipeline(redis: Redis, commands: Sequence[Command]) -> list[object]:
    async with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))
