"""A complete worker: `relay worker --stream anyformat:events:extraction.completed \
--group billing --handler examples.billing_worker:handle`."""

from __future__ import annotations

import structlog

from relay import Event

log = structlog.get_logger("billing")


class TemporaryFailure(Exception):
    """Raise anything to have the entry retried with backoff; after the last attempt it
    goes to the dead-letter stream with the exception's text."""


async def handle(event: Event) -> None:
    data = event.payload["data"]
    # Deliveries are at-least-once: make the effect idempotent on event.id.
    log.info(
        "billing_extraction",
        message_id=event.id,
        extraction_id=data.get("extraction_id"),
        status=data.get("status"),
        attempt=event.attempt,
    )
    if data.get("status") not in ("processed", "error"):
        raise TemporaryFailure(f"unexpected status {data.get('status')!r}")
