"""The ingest fan-out: one idempotent append covering every routed stream, in one round
trip shared with the deliveries that arrive at the same time (see ``batch``).

An entry is written under its dedupe marks (``marks``): its message id and, when it has one,
its content mark. A stream that has seen either inside the window holds the event already.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from relay.redis.batch import Batcher
from relay.redis.client import Redis
from relay.redis.cluster import RedisCluster, is_cluster, key_slot
from relay.redis.errors import REDIS_DOWN
from relay.redis.replication import ReplicaAck, ReplicasBehind, confirmed_pipeline
from relay.redis.scripts import APPEND_ONCE
from relay.streams.append import (
    TrailFacts,
    Written,
    append_command,
    decode_reply,
    encoded_append,
    load_script,
    run_appends,
)
from relay.streams.errors import ReplicationTimeout, StreamsUnavailable
from relay.streams.marks import dedupe_marks


@dataclass(slots=True)  # not frozen: that doubles the cost of __init__, paid per delivery
class Entry:
    """One stream entry as the contract defines it; every field is a string.

    ``content_mark`` is not a field of the entry but the event's identity by content
    (``relay.streams.marks.content_mark``), recorded next to it; ``None``: the id only.
    """

    id: str
    event: str
    payload: bytes
    received_at: int
    extraction_id: str
    workflow_id: str
    content_mark: str | None

    def facts(self) -> TrailFacts:
        """What the trail records beside the entry id (the body's digest tells a
        conflicting duplicate: the same id with another body)."""
        digest = hashlib.sha256(self.payload).hexdigest()
        return TrailFacts(digest, self.received_at, self.event, self.extraction_id)

    def fields(self) -> list[bytes]:
        return [
            b"id", self.id.encode(),
            b"event", self.event.encode(),
            b"payload", self.payload,
            b"received_at", b"%d" % self.received_at,
            b"extraction_id", self.extraction_id.encode(),
            b"workflow_id", self.workflow_id.encode(),
        ]  # fmt: skip


class FanoutWriter:
    """``ack``: answer only once that many replicas hold the write (``WAIT``); the
    duplicate's answer too, so that a re-send confirms the first attempt's entries."""

    def __init__(self, redis: Redis, *, dedupe_ttl: int, ack: ReplicaAck | None = None) -> None:
        self._redis = redis
        self._cluster = is_cluster(redis)  # checked once: it is slow
        self._ack = ack
        self.batcher = Batcher(redis, APPEND_ONCE, ack)
        self._window_ms = dedupe_ttl * 1000
        # MAXLEN 0: appends never trim; relay.streams.trim does, sparing what groups need.
        self._limits = (b"%d" % self._window_ms, b"0")

    async def load_script(self) -> None:
        await load_script(self._redis)

    async def write(self, entry: Entry, streams: Sequence[str]) -> list[Written]:
        """Write ``entry`` to every stream that has seen neither its id nor its content
        mark; per stream, its new entry id, ``None`` for "already there", or a
        :class:`~relay.streams.append.Conflict` for "already there with another body".
        Returns only once every stream holds it (and its marks and trail record).

        Raises :class:`ReplicationTimeout` when replicas did not confirm in time, and
        :class:`StreamsUnavailable` when Redis failed (nothing or part may be written:
        a re-send completes it, once)."""
        marks = dedupe_marks(entry.id, entry.content_mark)
        facts = entry.facts()
        try:
            if self._cluster:
                return await self._write_by_slot(entry, streams, marks, facts)
            # A single Redis: one command for every stream, sent with the other deliveries'.
            tail = [
                *self._limits, b"%d" % len(marks), *facts.args(), *(m.encode() for m in marks),
                *entry.fields(),
            ]  # fmt: skip
            return decode_reply(await self.batcher.run(encoded_append(tuple(streams), tail)))
        except ReplicasBehind as exc:
            raise ReplicationTimeout(exc.acknowledged, exc.wanted) from exc
        except REDIS_DOWN as exc:
            raise StreamsUnavailable(type(exc).__name__) from exc

    async def _write_by_slot(
        self, entry: Entry, streams: Sequence[str], marks: Sequence[str], facts: TrailFacts
    ) -> list[Written]:
        """One command per hash slot (a script touches one slot), in one cluster pipeline:
        one round trip per node (with its ``WAIT`` when replicas must confirm)."""
        slots: dict[int, list[int]] = {}
        for index, stream in enumerate(streams):
            slots.setdefault(key_slot(stream), []).append(index)
        groups = list(slots.values())
        commands = [
            append_command([streams[i] for i in group], marks, entry.fields(),
                           window_ms=self._window_ms, maxlen=0, facts=facts)
            for group in groups
        ]  # fmt: skip
        if self._ack is None:
            replies = await run_appends(self._redis, commands)
        else:
            cluster = cast(RedisCluster, self._redis)
            slot_streams = [streams[group[0]] for group in groups]
            confirmed = await confirmed_pipeline(
                cluster, APPEND_ONCE, commands, slot_streams, self._ack
            )
            replies = [decode_reply(reply) for reply in confirmed]
        written: list[Written] = [None] * len(streams)
        for group, reply in zip(groups, replies, strict=True):
            for index, entry_id in zip(group, reply, strict=True):
                written[index] = entry_id
        return written
