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


def script_keys(streams: Sequence[str]) -> list[str]:
    """The script's KEYS: each stream followed by its dedupe set."""
    return [key for stream in streams for key in (stream, dedupe_key(stream))]


def append_command(
    streams: Sequence[str],
    marks: Sequence[str],
    fields: Fields,
    *,
    window_ms: int,
    maxlen: int,
    own: Sequence[Fields] = (),
) -> Command:
    """The ``EVALSHA`` arguments appending ``fields`` to every stream of ``streams`` that
    has seen none of ``marks``. On Redis Cluster the streams must share a hash slot.

    ``own``: per stream, fields only its entry gets (each stream's trace context); all of
    the same length, or none at all."""
    keys = script_keys(streams)
    per_stream = len(own[0]) if own else 0
    mine = [item for items in own for item in items]
    return ("EVALSHA", SHA, len(keys), *keys, window_ms, maxlen, len(marks), *marks,
            per_stream, *mine, *fields)  # fmt: skip


def encode(args: Sequence[bytes]) -> bytes:
    """RESP bulk strings of ``args`` (without the array header)."""
    return b"".join([b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args])


@functools.lru_cache(maxsize=1024)
def _append_head(streams: tuple[str, ...]) -> tuple[bytes, int]:
    """The fixed part of an append to ``streams`` (script, key count, keys) in RESP, and
    how many arguments it holds."""
    keys = script_keys(streams)
    head = [b"EVALSHA", SHA.encode(), b"%d" % len(keys), *(key.encode() for key in keys)]
    return encode(head), len(head)


def encoded_append(streams: tuple[str, ...], tail: Sequence[bytes]) -> bytes:
    """One append command in RESP; ``tail`` is everything after the keys (window, maxlen,
    mark count, marks, per-stream fields, fields), already bytes."""
    head, count = _append_head(streams)
    return b"*%d\r\n%b%b" % (count + len(tail), head, encode(tail))


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


async def run_appends(redis: Redis, commands: Sequence[Command]) -> list[list[str | None]]:
    """Run appends in one pipelined round trip; per command and per stream, the new entry
    id, or ``None`` when it was already there. Raises the first Redis error any met."""
    replies = await reloading_script(redis, lambda: _pipeline(redis, commands))
    return [decode_reply(reply) for reply in replies]


def decode_reply(reply: object) -> list[str | None]:
    """One append's reply as new entry ids (``None``: already there); an error reply is
    raised."""
    if isinstance(reply, Exception):
        raise reply
    assert isinstance(reply, list), reply
    return [entry.decode() if isinstance(entry, bytes) else None for entry in reply]


async def append_once(
    redis: Redis, stream: str, marks: Sequence[str], fields: Fields, *, window_ms: int, maxlen: int
) -> str | None:
    command = append_command([stream], marks, fields, window_ms=window_ms, maxlen=maxlen)
    [[result]] = await run_appends(redis, [command])
    return result


async def _pipeline(redis: Redis, commands: Sequence[Command]) -> list[object]:
    async with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))
