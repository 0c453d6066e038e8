"""What a handler receives: one stream entry, parsed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

REQUIRED_FIELDS = ("id", "event", "payload")
TEXT_FIELDS = ("id", "event", "extraction_id", "workflow_id", "received_at", "source")


class MalformedEntry(Exception):
    """An entry no handler could use; it goes to the dead-letter stream at once."""


@dataclass(frozen=True, slots=True)
class Event:
    """One stream entry as a handler receives it.

    Attributes:
        payload: the webhook body AnyFormat sent, parsed (``{"event", "timestamp", "data"}``).
        id: the delivery's message id: the same for every copy of one event, so the key
            to make a handler's side effects idempotent.
        event: ``extraction.completed`` or ``extraction.failed``.
        stream: the stream the entry was read from.
        entry_id: the Redis entry id (``1712345678901-0``).
        attempt: which attempt this is, from 1 (Redis's delivery count: survives restarts).
        received_at: when the relay accepted the delivery, ms since the epoch.
        extraction_id, workflow_id: copied from ``payload["data"]`` ("" when absent).
        source: ``webhook`` (delivered by AnyFormat) or ``reconciled`` (recovered from
            its API after the deliveries failed; the payload then has the webhook's shape).
        fields: every field of the entry as written, undecoded (tracing fields among them).
        state: what the worker's lifespan yielded (an HTTP session, a pool).
    """

    payload: dict[str, Any]
    id: str
    event: str
    stream: str
    entry_id: str
    attempt: int
    received_at: int | None = None
    extraction_id: str = ""
    workflow_id: str = ""
    source: str = "webhook"
    fields: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    state: Mapping[str, Any] = field(default_factory=dict, repr=False)


def decode_fields(raw: Mapping[bytes, bytes]) -> dict[str, bytes]:
    return {key.decode(errors="replace"): value for key, value in raw.items()}


def parse_entry(
    stream: str,
    entry_id: str,
    fields: Mapping[str, bytes],
    attempt: int,
    state: Mapping[str, Any] | None = None,
) -> Event:
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise MalformedEntry(f"entry lacks field(s): {', '.join(missing)}")
    try:
        payload = orjson.loads(fields["payload"])
    except orjson.JSONDecodeError as exc:
        raise MalformedEntry(f"payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedEntry("payload is not a JSON object")
    try:
        text = {name: fields.get(name, b"").decode() for name in TEXT_FIELDS}
    except UnicodeDecodeError:
        raise MalformedEntry("a text field is not UTF-8") from None
    return Event(
        payload=payload,
        id=text["id"],
        event=text["event"],
        stream=stream,
        entry_id=entry_id,
        attempt=attempt,
        received_at=int(text["received_at"]) if text["received_at"].isdigit() else None,
        extraction_id=text["extraction_id"],
        workflow_id=text["workflow_id"],
        source=text["source"] or "webhook",
        fields=dict(fields),
        state=state if state is not None else {},
    )
