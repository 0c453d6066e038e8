"""What a finished run becomes: the entry its webhook would have produced.

A run's id is taken to be the webhook's ``extraction_id``: AnyFormat does not publish this,
but it is the only id a run and an extraction event share in shape (docs/reconciliation.md;
``RELAY_RECONCILE=false`` turns reconciliation off where it does not hold).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from relay.reconcile.api import Run
from relay.streams.marks import content_mark
from relay.streams.writer import Entry

SOURCE = "reconciled"
EVENT_FOR_STATUS = {"processed": "extraction.completed", "error": "extraction.failed"}
TERMINAL = frozenset({"processed", "error", "cancelled"})  # cancelled has no event


@dataclass(slots=True)
class ReconciledEntry(Entry):
    """A stream entry recovered from the API: the contract's fields plus ``source``."""

    def fields(self) -> list[bytes]:
        return [*Entry.fields(self), b"source", SOURCE.encode()]


def entry_id(run: Run) -> str:
    return f"{SOURCE}:{run.id}:{run.status}"


def event_for(run: Run, events: Collection[str]) -> str | None:
    """The event a run in this status produced, if the relay subscribes to it."""
    event = EVENT_FOR_STATUS.get(run.status)
    return event if event in events else None


def payload(run: Run, event: str, workflow_id: str) -> bytes:
    """The webhook's body shape; its time is the run's last update (when it finished)."""
    finished = run.updated_at_text or datetime.now(UTC).isoformat(timespec="milliseconds")
    return orjson.dumps(
        {
            "event": event,
            "timestamp": finished,
            "data": {
                "extraction_id": run.id,
                "status": run.status,
                "workflow_id": workflow_id,
                "processed_at": finished if run.status == "processed" else None,
            },
        }
    )


def reconciled_entry(run: Run, event: str, workflow_id: str) -> ReconciledEntry:
    return ReconciledEntry(
        id=entry_id(run),
        event=event,
        payload=payload(run, event, workflow_id),
        received_at=time.time_ns() // 1_000_000,
        extraction_id=run.id,
        workflow_id=workflow_id,
        # The mark its webhook records too: whichever comes second is a duplicate.
        content_mark=content_mark(event, run.id, run.status),
    )
