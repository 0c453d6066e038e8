"""The trail of one event: which streams hold it and what each group did with it.

Found from what the writers recorded when they wrote (no stream is scanned): the ingest's
trail record per stream (relay.streams.records), the dead-letter move's record in the DLQ's
trail records, and the replay's record. Each group's state then comes from its pending
list for that one entry id (``XPENDING`` id..id) and its last-delivered id. Every call names
one key, so it works on Redis Cluster, where an event's keys lie in several slots; each
step's calls go out together (one pipeline), so the cost is a handful of round trips
whatever the streams' length.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from relay.operator.times import id_key, id_ms, iso_ms
from relay.reconcile.events import SOURCE as RECONCILED
from relay.redis.client import Redis
from relay.redis.errors import ResponseError
from relay.redis.keys import dlq_stream, extraction_index_key, replays_key, trail_records_key
from relay.streams.records import TrailRecord, parse_index, parse_record
from relay.worker.deadletter import dead_mark, get_dead, replay_mark

MAX_REPLAYS_FOLLOWED = 10  # a dead letter replayed, dead again, replayed... shown this deep

Document = dict[str, Any]


async def event_trail(redis: Redis, streams: Sequence[str], event_id: str) -> Document | None:
    """The contract's trail of ``event_id`` across ``streams`` (every stream the routes can
    write), or ``None`` when no stream recorded it inside the dedupe window."""
    records = await _records(redis, streams, event_id)
    if not records:
        return None
    found = await asyncio.gather(*(_stream_trail(redis, s, r) for s, r in records.items()))
    fields: dict[str, bytes] = {}
    for _, entry_fields in found:
        fields = fields or entry_fields
    # The whole record is in the first stream of each append; the others hold the entry id.
    first = next((r for r in records.values() if r.full), next(iter(records.values())))
    # Reconciliation's ids are "<its source>:<run>:<status>" (relay.reconcile.events).
    source = RECONCILED if event_id.partition(":")[0] == RECONCILED else "webhook"
    return {
        "id": event_id,
        "event": first.event or _text(fields.get("event")),
        "extraction_id": first.extraction_id or _text(fields.get("extraction_id")),
        "workflow_id": _text(fields.get("workflow_id")) if fields else None,
        "source": _text(fields.get("source", source.encode())),
        "received_at": iso_ms(first.received_at or id_ms(first.entry_id)),
        "duplicates": max(record.duplicates for record in records.values()),
        "streams": [document for document, _ in found],
    }


async def extraction_events(redis: Redis, streams: Sequence[str], extraction_id: str) -> Document:
    """``{"events": [{"id", "event", "received_at"}…]}``: every event written for
    ``extraction_id`` inside the dedupe window, oldest first."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.hget(extraction_index_key(stream), extraction_id)
        listed = await pipe.execute()
    wanted = [
        (stream, event_id)
        for stream, raw in zip(streams, listed, strict=True)
        for event_id in parse_index(raw)
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for stream, event_id in wanted:
            pipe.hget(trail_records_key(stream), event_id)
        raws = await pipe.execute()
    events: dict[str, Document] = {}
    for (_, event_id), raw in zip(wanted, raws, strict=True):
        if raw is None or event_id in events:
            continue
        record = parse_record(raw)
        received = record.received_at or id_ms(record.entry_id)
        events[event_id] = {"id": event_id, "event": record.event, "received_at": received}
    ordered = sorted(events.values(), key=lambda event: (event["received_at"], event["id"]))
    for event in ordered:
        event["received_at"] = iso_ms(event["received_at"])
    return {"events": ordered}


async def _records(redis: Redis, streams: Sequence[str], event_id: str) -> dict[str, TrailRecord]:
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.hget(trail_records_key(stream), event_id)
        raws = await pipe.execute()
    return {
        stream: parse_record(raw)
        for stream, raw in zip(streams, raws, strict=True)
        if raw is not None
    }


async def _stream_trail(
    redis: Redis, stream: str, record: TrailRecord
) -> tuple[Document, dict[str, bytes]]:
    """The stream's part of the trail, and the entry's fields (empty once trimmed)."""
    entry_id = record.entry_id
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrange(stream, entry_id, entry_id, count=1)
        pipe.xinfo_groups(stream)
        entries, groups = await pipe.execute(raise_on_error=False)
    if isinstance(entries, Exception):
        raise entries
    if isinstance(groups, ResponseError):  # the stream is gone altogether
        groups = []
    elif isinstance(groups, Exception):
        raise groups
    present = bool(entries)
    fields = {_text(k): v for k, v in entries[0][1].items()} if present else {}
    states = await asyncio.gather(
        *(
            _group_state(redis, stream, _text(group["name"]), _text(group["last-delivered-id"]),
                         entry_id, present)
            for group in groups
        )
    )  # fmt: skip
    document = {
        "stream": stream,
        "entry_id": entry_id,
        "trimmed": not present,
        "groups": [
            {"group": _text(group["name"]), **state}
            for group, state in zip(groups, states, strict=True)
        ],
    }
    return document, fields


async def _group_state(
    redis: Redis,
    stream: str,
    group: str,
    last_delivered: str,
    entry_id: str,
    present: bool,
    depth: int = 0,
) -> Document:
    """One group's state for one entry: pending, dead-lettered (and replayed, whose new
    entry's state follows), acknowledged, not yet delivered, or gone."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xpending_range(stream, group, entry_id, entry_id, 1)
        pipe.hget(trail_records_key(dlq_stream(stream)), dead_mark(group, entry_id))
        pending, dead = await pipe.execute(raise_on_error=False)
    if dead is not None and not isinstance(dead, Exception):
        return await _dead_state(redis, stream, group, last_delivered, parse_record(dead), depth)
    if isinstance(pending, list) and pending and present:
        held = pending[0]
        return {
            "state": "in_progress",
            "consumer": _text(held["consumer"]),
            "attempts": int(held["times_delivered"]),
            "idle_seconds": round(int(held["time_since_delivered"]) / 1000, 3),
        }
    delivered = id_key(entry_id) <= id_key(last_delivered)
    if delivered and not pending:
        return {"state": "done"}
    return {"state": "waiting" if present else "trimmed"}


async def _dead_state(
    redis: Redis, stream: str, group: str, last_delivered: str, move: TrailRecord, depth: int
) -> Document:
    dlq_id = move.entry_id
    letter, replayed_as = await asyncio.gather(
        get_dead(redis, stream, dlq_id), redis.hget(replays_key(stream), replay_mark(dlq_id))
    )
    dead_letter: Document = {"entry_id": dlq_id}
    if letter is not None:
        dead_letter.update(
            error=letter.text("error"),
            attempts=int(letter.text("attempts") or 0),
            failed_at=iso_ms(int(letter.text("failed_at") or id_ms(dlq_id))),
        )
    if replayed_as is not None:
        new_id = _text(replayed_as)
        state: Document = {"entry_id": new_id}
        if depth < MAX_REPLAYS_FOLLOWED:
            present = bool(await redis.xrange(stream, new_id, new_id, count=1))
            state.update(
                await _group_state(redis, stream, group, last_delivered, new_id, present, depth + 1)
            )
        return {"state": "replayed", "dead_letter": dead_letter, "replayed_as": state}
    if letter is None:  # moved, then deleted from the DLQ without a replay
        return {"state": "purged", "dead_letter": dead_letter}
    return {"state": "dead_lettered", "dead_letter": dead_letter}


def _text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
