"""Idempotent stream appends: the one Lua step every writer of this package uses.

The ingest fan-out, the dead-letter queue and replay all append "once per mark": running the
same append again (after ``NOSCRIPT``, a lost connection, or a crash before the answer) can
never produce a second entry, which is what makes every retry here safe.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from relay.redis.client import Redis
from relay.redis.keys import dedupe_key
from relay.redis.pipeline import pipelined
from relay.redis.resp import Command, finish
from relay.redis.scripts import APPEND_ONCE, command, encoded_head, load, reloading

Fields = Sequence[str | bytes]


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
    """The call appending ``fields`` to every stream of ``streams`` that has seen none of
    ``marks``. On Redis Cluster the streams must share a hash slot.

    ``own``: per stream, fields only its entry gets (each stream's trace context); all of
    the same length, or none at all."""
    per_stream = len(own[0]) if own else 0
    mine = [item for items in own for item in items]
    arguments = (window_ms, maxlen, len(marks), *marks, per_stream, *mine, *fields)
    return command(APPEND_ONCE, script_keys(streams), arguments)


@functools.lru_cache(maxsize=1024)
def _append_head(streams: tuple[str, ...]) -> tuple[bytes, int]:
    """The fixed part of an append to ``streams`` (script, key count, keys) in RESP, and
    how many arguments it holds."""
    return encoded_head(APPEND_ONCE, script_keys(streams))


def encoded_append(streams: tuple[str, ...], tail: Sequence[bytes]) -> bytes:
    """One append command in RESP; ``tail`` is everything after the keys (window, maxlen,
    mark count, marks, per-stream fields, fields), already bytes."""
    head, count = _append_head(streams)
    return finish(head, count, tail)


async def load_script(redis: Redis) -> None:
    await load(redis, APPEND_ONCE)


async def run_appends(redis: Redis, commands: Sequence[Command]) -> list[list[str | None]]:
    """Run appends in one pipelined round trip; per command and per stream, the new entry
    id, or ``None`` when it was already there. Raises the first Redis error any met."""
    replies = await reloading(redis, APPEND_ONCE, lambda: pipelined(redis, commands))
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
