"""What senders read about their answers (docs/reliability.md) says when a new id is
answered ``duplicate``: the content-mark rule, not only on the registration page."""

from __future__ import annotations

from pathlib import Path

RELIABILITY = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def senders_section() -> str:
    text = RELIABILITY.read_text()
    start = text.index("## What the sender sees")
    return text[start : text.index("\n## ", start + 1)]


def test_the_answers_section_states_the_content_mark_rule() -> None:
    section = senders_section()
    assert "(event, data.extraction_id, data.status)" in section
    assert "new id whose content mark" in section
    assert "extraction re-run gets a new `extraction_id`" in section
