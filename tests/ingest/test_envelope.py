import pytest

from relay.ingest.envelope import EnvelopeError, parse_envelope
from tests.support.signing import event_body


def test_reads_event_and_ids() -> None:
    envelope = parse_envelope(event_body(extraction_id="ex", workflow_id="wf"))
    assert (envelope.event, envelope.extraction_id, envelope.workflow_id) == (
        "extraction.completed",
        "ex",
        "wf",
    )


def test_absent_or_null_ids_are_empty_and_new_fields_are_fine() -> None:
    envelope = parse_envelope(b'{"event": "x.y", "data": {"workflow_id": null}, "new": [1]}')
    assert (envelope.extraction_id, envelope.workflow_id) == ("", "")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"event": "\xed\xa0\x80", "data": {}}', "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"data": {}}', "'event' must be a non-empty string"),
        (b'{"event": 5, "data": {}}', "'event' must be a non-empty string"),
        (b'{"event": "", "data": {}}', "'event' must be a non-empty string"),
        (b'{"event": "x"}', "'data' must be an object"),
        (b'{"event": "x", "data": []}', "'data' must be an object"),
    ],
)
def test_unroutable_bodies_are_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        parse_envelope(body)
