"""Idempotent stream appends: the one Lua step every writer of this package uses.

The ingest fan-out, the dead-letter queue and replay all append "once per mark": running the
same append again (after ``NOSCRIPT``, a lost connection, or a crash before the answer) can
never produce a second entry, which is what makes every retry here safe.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from relay.redis.client import Redis
from relay.redis.keys import dedupe_key, extraction_index_key, trail_records_key
from relay.redis.pipeline import pipelined
from relay.redis.resp import Command, finish
from relay.redis.scripts import APPEND_ONCE, command, encoded_head, load, reloading

Fields = Sequence[str | bytes]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A duplicate whose body differs from the one first written under its id: ``digest``
    is the first body's."""

    digest: str


# Per stream: the new entry id, None (already there), or a conflicting duplicate.
Written = str | Conflict | None


@dataclass(frozen=True, slots=True)
class TrailFacts:
    """What the trail record of an append holds beside its entry id (append_once.lua)."""

    digest: str = ""
    received_at: int = 0
    event: str = ""
    extraction_id: str = ""

    def args(self) -> tuple[bytes, bytes, bytes, bytes]:
        return (
            self.digest.encode(),
            b"%d" % self.received_at,
            self.event.encode(),
            self.extraction_id.encode(),
        )


NO_FACTS = TrailFacts()


def script_keys(streams: Sequence[str]) -> list[str]:
    """The script's KEYS: each stream followed by its dedupe set, trail records and
    extraction index."""
    return [key for stream in streams for key in _keys_of(stream)]


def _keys_of(stream: str) -> tuple[str, str, str, str]:
    return stream, dedupe_key(stream), trail_records_key(stream), extraction_index_key(stream)


def append_command(
    streams: Sequence[str],
    marks: Sequence[str],
    fields: Fields,
    *,
    window_ms: int,
    maxlen: int,
    facts: TrailFacts = NO_FACTS,
) -> Command:
    """The call appending ``fields`` to every stream of ``streams`` that has seen none of
    ``marks``. On Redis Cluster the streams must share a hash slot."""
    return command(
        APPEND_ONCE,
        script_keys(streams),
        (window_ms, maxlen, len(marks), *facts.args(), *marks, *fields),
    )


@functools.lru_cache(maxsize=1024)
def _append_head(streams: tuple[str, ...]) -> tuple[bytes, int]:
    """The fixed part of an append to ``streams`` (script, key count, keys) in RESP, and
    how many arguments it holds."""
    return encoded_head(APPEND_ONCE, script_keys(streams))


def encoded_append(streams: tuple[str, ...], tail: Sequence[bytes]) -> bytes:
    """One append command in RESP; ``tail`` is everything after the keys (window, maxlen,
    mark count, trail facts, marks, fields), already bytes."""
    head, count = _append_head(streams)
    return finish(head, count, tail)


async def load_script(redis: Redis) -> None:
    await load(redis, APPEND_ONCE)


async def run_appends(redis: Redis, commands: Sequence[Command]) -> list[list[Written]]:
    """Run appends in one pipelined round trip; per command and per stream, the new entry
    id, or ``None`` / :class:`Conflict` when it was already there. Raises the first Redis
    error any met."""
    replies = await reloading(redis, APPEND_ONCE, lambda: pipelined(redis, commands))
    return [decode_reply(reply) for reply in replies]


def decode_reply(reply: object) -> list[Written]:
    """One append's reply as new entry ids (``None``: already there; :class:`Conflict`:
    already there with another body); an error reply is raised."""
    if isinstance(reply, Exception):
        raise reply
    assert isinstance(reply, list), reply
    return [_written(entry) for entry in reply]


def _written(entry: object) -> Written:
    if isinstance(entry, bytes):
        return entry.decode()
    if isinstance(entry, list):
        return Conflict(entry[0].decode())
    return None


async def append_once(
    redis: Redis, stream: str, marks: Sequence[str], fields: Fields, *, window_ms: int, maxlen: int
) -> str | None:
    """Append ``fields`` to ``stream`` unless one of ``marks`` was seen; the new entry id.
    The trail record of ``marks[0]`` holds the entry id (how the trail finds a dead letter
    from its move's mark)."""
    command = append_command([stream], marks, fields, window_ms=window_ms, maxlen=maxlen)
    [[result]] = await run_appends(redis, [command])
    return result if isinstance(result, str) else None
