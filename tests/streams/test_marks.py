"""Content marks: one event, one mark, whichever subscription or reconciliation carried it."""

from __future__ import annotations

from relay.ingest.envelope import parse_envelope
from relay.streams.marks import content_mark, dedupe_marks


def test_the_same_event_has_the_same_mark_and_any_other_field_changes_it() -> None:
    mark = content_mark("extraction.completed", "ex-1", "processed")
    assert mark == content_mark("extraction.completed", "ex-1", "processed")
    assert mark is not None and mark.startswith("content:")
    others = {
        content_mark("extraction.failed", "ex-1", "processed"),
        content_mark("extraction.completed", "ex-2", "processed"),
        content_mark("extraction.completed", "ex-1", "error"),
        # the separator keeps field boundaries: these concatenate alike
        content_mark("extraction.completed", "ex-1p", "rocessed"),
    }
    assert mark not in others and len(others) == 4


def test_no_extraction_id_no_mark() -> None:
    assert content_mark("extraction.completed", "", "processed") is None
    assert dedupe_marks("msg_1", None) == ("msg_1",)


def test_the_size_is_fixed_whatever_the_sender_put_in_the_fields() -> None:
    huge, small = content_mark("e", "x" * 100_000, "s"), content_mark("e", "x", "s")
    assert huge is not None and small is not None and len(huge) == len(small)


def test_a_webhook_body_and_its_reconciled_twin_have_one_mark() -> None:
    """Reconciliation builds ``data`` from the run; the webhook carries the same fields."""
    webhook = parse_envelope(
        b'{"event": "extraction.completed", "timestamp": "2026-01-01T00:00:00Z", "data": '
        b'{"extraction_id": "run-7", "status": "processed", "workflow_id": "wf-1", '
        b'"processed_at": "2026-01-01T00:00:00Z"}}'
    )
    assert webhook.content_mark() == content_mark("extraction.completed", "run-7", "processed")
    assert dedupe_marks("msg_1", webhook.content_mark()) == ("msg_1", webhook.content_mark())
