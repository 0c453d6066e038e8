"""Times and stream ids as the operator API shows and takes them (ISO 8601 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(ms: int) -> str:
    """Unix milliseconds as ``2024-03-24T12:02:30.000Z``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time_ms(text: str) -> int:
    """ISO 8601 (a ``Z`` or an offset; a date alone is midnight UTC) or Unix milliseconds,
    as Unix milliseconds. Raises ``ValueError`` for anything else."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def id_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id (when Redis wrote it)."""
    return int(entry_id.split("-", 1)[0])


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair (ids compare by number, not as text)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
