"""Idempotent stream appends: the one Lua step every writer of this package uses.

The ingest fan-out appends "once per mark" (as the dead-letter move and the replay do, in
``relay.redis.functions``): running the same append again (after ``NOSCRIPT``, a lost
connection, or a crash before the answer) can never produce a second entry, which is what
makes every retry here safe.
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
    streams: Sequence[str], marks: Sequence[str], fields: Fields, *, window_ms: int, maxlen: int
) -> Command:
    """The call appending ``fields`` to every stream of ``streams`` that has seen none of
    ``marks``. On Redis Cluster the streams must share a hash slot."""
    return command(
        APPEND_ONCE, script_keys(streams), (window_ms, maxlen, len(marks), *marks, *fields)
    )


@functools.lru_cache(maxsize=1024)
def _append_head(streams: tuple[str, ...]) -> tuple[bytes, int]:
    """The fixed part of an append to ``streams`` (script, key count, keys) in RESP, and
    how many arguments it holds."""
    return encoded_head(APPEND_ONCE, script_keys(streams))


def encoded_append(streams: tuple[str, ...], tail: Sequence[bytes]) -> bytes:
    """One append command in RESP; ``tail`` is everything after the keys (window, maxlen,
    mark count, marks, fields), already bytes."""
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
