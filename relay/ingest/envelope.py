"""The few fields of a delivery the relay reads; the payload itself travels untouched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from relay.streams.marks import content_mark


class EnvelopeError(Exception):
    """A signed body the relay cannot route: answered with 400, nothing written."""


@dataclass(slots=True)  # not frozen: that doubles the cost of __init__, paid per delivery
class Envelope:
    event: str
    extraction_id: str
    workflow_id: str
    status: str = ""

    def content_mark(self) -> str | None:
        """The event's content mark (see ``relay.streams.marks``)."""
        return content_mark(self.event, self.extraction_id, self.status)


def parse_envelope(body: bytes) -> Envelope:
    """Require a JSON object with a string ``event`` and an object ``data``.

    orjson rejects invalid UTF-8 (and lone surrogates) itself, so a body that parses here
    is also valid text for every downstream consumer.
    """
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = "body is not UTF-8" if "utf-8" in str(exc).lower() else "body is not valid JSON"
        raise EnvelopeError(reason) from None
    if not isinstance(document, dict):
        raise EnvelopeError("body must be a JSON object")
    event = document.get("event")
    if not isinstance(event, str) or not event:
        raise EnvelopeError("'event' must be a non-empty string")
    data = document.get("data")
    if not isinstance(data, dict):
        raise EnvelopeError("'data' must be an object")
    return Envelope(
        event=event,
        extraction_id=_text(data.get("extraction_id")),
        workflow_id=_text(data.get("workflow_id")),
        status=_text(data.get("status")),
    )


def _text(value: Any) -> str:
    """Ids are strings in the provider's schema; a number is kept, anything else is absent."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""
