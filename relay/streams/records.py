"""Reading the trail records that append_once.lua keeps beside each stream.

The record of an append lives in ``trail_records_key(stream)`` under its first dedupe mark
(the message id for a delivery, ``dead/<group>/<entry id>`` for a dead-letter move) for as
long as the mark does. It is what lets the event trail go from an id to its entries without
scanning a stream. Only the first stream of an append holds the whole record (and the
extraction index); the others hold the entry id alone, which ``full`` tells apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TrailRecord:
    entry_id: str
    digest: str  # sha256 hex of the body ('' when the writer recorded none)
    duplicates: int  # re-deliveries answered duplicate since the entry was written
    received_at: int  # Unix ms (0 when the writer recorded none)
    event: str
    extraction_id: str

    @property
    def full(self) -> bool:
        """Whether this is the whole record (the append's first stream), not the entry id."""
        return self.received_at != 0 or self.digest != "" or self.event != ""


def parse_record(raw: bytes | str) -> TrailRecord:
    """``"<entry id> <digest> <duplicates> <received_at> <len(event)> <event><extraction>"``
    (the length in bytes, as Lua counts)."""
    data = raw.encode() if isinstance(raw, str) else raw
    if b" " not in data:  # a stream other than the first of its append: the entry id only
        return TrailRecord(data.decode(), "", 0, 0, "", "")
    entry_id, digest, duplicates, received_at, length, rest = data.split(b" ", 5)
    size = int(length)
    return TrailRecord(
        entry_id=entry_id.decode(),
        digest=digest.decode(),
        duplicates=int(duplicates),
        received_at=int(received_at),
        event=rest[:size].decode(errors="replace"),
        extraction_id=rest[size:].decode(errors="replace"),
    )


def parse_index(raw: bytes | str | None) -> list[str]:
    """An extraction index field: the first marks (message ids) of that extraction's events."""
    if raw is None:
        return []
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return [mark for mark in text.split("\n") if mark]
