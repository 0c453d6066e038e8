"""The dead-letter stream ``{stream}:dlq``: writing to it, inspecting it, replaying from it.

Every move is an idempotent append (a function of the ``relay_v1`` library, the same
``FCALL`` workers in other languages make) followed by the removal of the source (``XACK``
or ``XDEL``). A crash between the two leaves the source in place; doing the move again finds
the append already made (its dedupe mark) and only finishes the removal. Nothing is lost
and nothing doubles, and the two keys may live on different Redis Cluster shards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from relay.redis.client import Redis
from relay.redis.cluster import is_cluster, key_slot
from relay.redis.functions import DEAD_LETTER, REPLAY, fcall
from relay.redis.keys import (
    dedupe_key,
    dlq_stream,
    replay_marks_key,
    replays_key,
    trail_records_key,
)
from relay.tracing import Sends, own_fields, tracer
from relay.tracing.base import NO_SENDS

DLQ_FIELDS = ("error", "attempts", "group", "original_id", "failed_at")
REPLAYED_FROM = "replayed_from"  # on a replayed entry: the dead letter it came from
DLQ_MAXLEN = 1_000_000  # relay_v1.lua's (approximate): the AsyncAPI document states it


def dead_mark(group: str, entry_id: str) -> str:
    """The mark of ``group``'s move of ``entry_id`` to the DLQ (relay_v1.lua spells it
    too); the DLQ's trail record under it holds the dead letter's entry id."""
    return f"dead/{group}/{entry_id}"


def replay_mark(dlq_id: str) -> str:
    return f"replay/{dlq_id}"


async def dead_letter(
    redis: Redis,
    stream: str,
    group: str,
    entry_id: str,
    fields: Mapping[str, bytes],
    *,
    error: str,
    attempts: int,
    send: Sends = NO_SENDS,
) -> str | None:
    """Move one pending entry to the DLQ, with the contract's extra fields, then ack it:
    ``relay_dead_letter_v1``, acknowledging in the same call where the stream shares the
    DLQ's slot (always on a single Redis), else by an ``XACK`` after it. The dead letter's
    id (``None``: an earlier try of this move had written it).

    ``send``: the move's span; the dead letter carries its context instead of the entry's
    (same trace: the move's span is a child of the attempt's)."""
    dlq = dlq_stream(stream)
    together = not is_cluster(redis) or key_slot(stream) == key_slot(dlq)
    keys = [dlq, dedupe_key(dlq), trail_records_key(dlq), *([stream] if together else [])]
    flat: list[str | bytes | int] = [group, entry_id, error, attempts]
    for name, value in {**fields, **own_fields(send)}.items():
        flat += [name, value]
    written, _ = await fcall(redis, DEAD_LETTER, keys, flat)
    dlq_id = _text(written) or None
    send.written([dlq_id])
    if not together:
        await redis.xack(stream, group, entry_id)
    return dlq_id


@dataclass(frozen=True)
class DeadLetter:
    dlq_id: str
    fields: dict[str, bytes]

    def text(self, name: str) -> str:
        return self.fields.get(name, b"").decode(errors="replace")

    @property
    def original_fields(self) -> dict[str, bytes]:
        return {k: v for k, v in self.fields.items() if k not in DLQ_FIELDS}


def _decode(entries: Any) -> list[DeadLetter]:
    """XRANGE's reply (binary) as dead letters."""
    return [
        DeadLetter(entry_id.decode(), {k.decode(errors="replace"): v for k, v in fields.items()})
        for entry_id, fields in entries
    ]


async def list_dead(
    redis: Redis, stream: str, limit: int, *, after: str | None = None
) -> list[DeadLetter]:
    """Up to ``limit`` dead letters, oldest first, after the dead letter ``after``: page
    through a DLQ of any size by passing the last id of the previous page."""
    start = "-" if after is None else f"({after}"
    return _decode(await redis.xrange(dlq_stream(stream), min=start, count=limit))


async def all_dead_ids(redis: Redis, stream: str, page: int = 1000) -> list[str]:
    """Every dead letter's id, read a page at a time."""
    ids: list[str] = []
    while letters := await list_dead(redis, stream, page, after=ids[-1] if ids else None):
        ids += [letter.dlq_id for letter in letters]
    return ids


async def get_dead(redis: Redis, stream: str, dlq_id: str) -> DeadLetter | None:
    found = _decode(await redis.xrange(dlq_stream(stream), min=dlq_id, max=dlq_id))
    return found[0] if found else None


ReplayOutcome = Literal["replayed", "finished", "absent"]


async def replay(redis: Redis, stream: str, dlq_id: str) -> ReplayOutcome:
    """Put a dead letter back on its stream and remove it from the DLQ, exactly once.

    ``replayed``: appended now; ``finished``: an interrupted replay had appended it already,
    only the removal was left; ``absent``: no such dead letter (replayed before, or purged).
    The replay's mark is kept 30 days in its own key, whatever ``RELAY_DEDUPE_TTL`` is.
    """
    letter = await get_dead(redis, stream, dlq_id)
    if letter is None:
        return "absent"
    original = letter.original_fields
    with tracer().replay(stream, original) as send:  # a new trace, linked to the letter's
        flat: list[str | bytes] = [dlq_id]
        for name, value in {**letter.fields, **own_fields(send)}.items():
            flat += [name, value]
        keys = [stream, replay_marks_key(stream), replays_key(stream)]
        new_id = _text(await fcall(redis, REPLAY, keys, flat))
        send.written([new_id or None])
    await redis.xdel(dlq_stream(stream), dlq_id)
    return "replayed" if new_id else "finished"  # "": replayed before, only the XDEL left


async def purge(redis: Redis, stream: str, before_ms: int | None) -> int:
    """Delete dead letters (all, or those dead-lettered before ``before_ms``); the count."""
    if before_ms is None:
        length = int(await redis.xlen(dlq_stream(stream)))
        await redis.delete(dlq_stream(stream))
        return length
    return int(await redis.xtrim(dlq_stream(stream), minid=str(before_ms), approximate=False))


def _text(reply: bytes | str | None) -> str:
    """A function's reply id as text ("" when nothing was written)."""
    return reply.decode() if isinstance(reply, bytes) else reply or ""
