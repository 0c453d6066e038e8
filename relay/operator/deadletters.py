"""Dead letters as an operator looks for them: filtered, newest first, a page at a time, and
"how many would this replay or purge?" before anything is done.

A selection is either dead-letter entry ids or a filter (event, group, error text, and a
time range). The time range is on the dead letter's entry id, the moment it reached the
DLQ, so a range is an id range Redis reads directly; the other criteria are checked on
each dead letter read. A page reads at most ``SCAN_BUDGET`` dead letters: a filter that
matches rarely answers a short page with a cursor rather than reading a whole DLQ at once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.operator.times import id_ms, iso_ms, parse_time_ms
from relay.redis.client import Redis
from relay.redis.keys import dlq_stream
from relay.worker.deadletter import DeadLetter

PAGE = 500  # dead letters per XRANGE
SCAN_BUDGET = 10_000  # dead letters read for one listing page at most
MAX_LIMIT = 1000
SAMPLE = 10
ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")

Document = dict[str, Any]


class SelectionError(ValueError):
    """A filter or id list the operator must fix (answered ``400``, or a usage error)."""


@dataclass(frozen=True, slots=True)
class Filter:
    event: str | None = None
    group: str | None = None
    error: str | None = None  # a substring of the error, case-insensitive
    since_ms: int | None = None  # dead-lettered at or after
    until_ms: int | None = None  # dead-lettered at or before

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Filter:
        """From the API's or the CLI's values (``since``/``until``: ISO 8601 or Unix ms;
        empty values mean "any"). Raises :class:`SelectionError`."""
        unknown = set(values) - {"event", "group", "error", "since", "until"}
        if unknown:
            raise SelectionError(f"unknown filter field(s): {', '.join(sorted(unknown))}")
        text = {key: value for key, value in values.items() if value not in (None, "")}
        for key, value in text.items():
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise SelectionError(f"filter field {key!r} must be a string")
        try:
            since = parse_time_ms(str(text["since"])) if "since" in text else None
            until = parse_time_ms(str(text["until"])) if "until" in text else None
        except ValueError:
            raise SelectionError("since/until: an ISO 8601 time or Unix milliseconds") from None
        return cls(
            event=text.get("event"),
            group=text.get("group"),
            error=text.get("error"),
            since_ms=since,
            until_ms=until,
        )

    def matches(self, letter: DeadLetter) -> bool:
        if self.event is not None and letter.text("event") != self.event:
            return False
        if self.group is not None and letter.text("group") != self.group:
            return False
        return self.error is None or self.error.lower() in letter.text("error").lower()

    def id_range(self) -> tuple[str, str]:
        """The XRANGE bounds of the time range."""
        low = "-" if self.since_ms is None else f"{self.since_ms}-0"
        high = "+" if self.until_ms is None else f"{self.until_ms}-18446744073709551615"
        return low, high


@dataclass(frozen=True, slots=True)
class Selection:
    """What a replay or purge acts on: these dead-letter ids, or every one ``filter``
    matches."""

    ids: tuple[str, ...] | None = None
    filter: Filter | None = None

    @classmethod
    def parse(cls, document: Mapping[str, Any]) -> Selection:
        """From ``{"ids": [...]}`` or ``{"filter": {...}}`` (exactly one)."""
        has_ids, has_filter = "ids" in document, "filter" in document
        if has_ids == has_filter:
            raise SelectionError('give either "ids" (dead-letter entry ids) or "filter"')
        if has_ids:
            ids = document["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise SelectionError('"ids" must be a list of dead-letter entry ids')
            return cls(ids=check_ids(ids))
        if not isinstance(document["filter"], dict):
            raise SelectionError('"filter" must be an object')
        return cls(filter=Filter.parse(document["filter"]))


def check_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """``ids`` in order, once each; each must look like a stream entry id."""
    for entry_id in ids:
        if not ENTRY_ID.fullmatch(entry_id):
            raise SelectionError(f"{entry_id!r} is not a stream entry id (like 1711281750000-0)")
    return tuple(dict.fromkeys(ids))


def describe(letter: DeadLetter) -> Document:
    """One dead letter as the API lists it."""
    attempts = letter.text("attempts")
    failed_at = letter.text("failed_at")
    return {
        "entry_id": letter.dlq_id,
        "original_id": letter.text("original_id"),
        "id": letter.text("id"),
        "event": letter.text("event"),
        "group": letter.text("group"),
        "error": letter.text("error"),
        "attempts": int(attempts) if attempts.isdigit() else None,
        "failed_at": iso_ms(int(failed_at) if failed_at.isdigit() else id_ms(letter.dlq_id)),
    }


async def list_dead_letters(
    redis: Redis, stream: str, flt: Filter, *, limit: int = 50, after: str | None = None
) -> Document:
    """``{"dead_letters": [...], "next": cursor or None}``, newest first; pass ``next`` as
    ``after`` for the following page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise SelectionError(f"limit must be between 1 and {MAX_LIMIT}")
    if after is not None:
        check_ids([after])
    low, high = flt.id_range()
    if after is not None:
        high = f"({after}"
    found: list[Document] = []
    scanned = 0
    last: str | None = None
    while True:
        letters = _decode(await redis.xrevrange(dlq_stream(stream), max=high, min=low, count=PAGE))
        for letter in letters:
            scanned += 1
            last = letter.dlq_id
            if flt.matches(letter):
                found.append(describe(letter))
                if len(found) == limit:
                    return {"dead_letters": found, "next": last}
            if scanned >= SCAN_BUDGET:
                return {"dead_letters": found, "next": last}
        if len(letters) < PAGE:
            return {"dead_letters": found, "next": None}
        high = f"({last}"


async def matching(redis: Redis, stream: str, selection: Selection) -> AsyncGenerator[str, None]:
    """The ids of the dead letters ``selection`` names that are in the DLQ now, oldest
    first, read a page at a time (a DLQ of any size, in bounded memory)."""
    dlq = dlq_stream(stream)
    if selection.ids is not None:
        for start in range(0, len(selection.ids), PAGE):
            page = selection.ids[start : start + PAGE]
            async with redis.pipeline(transaction=False) as pipe:
                for dlq_id in page:
                    pipe.xrange(dlq, dlq_id, dlq_id, count=1)
                found = await pipe.execute()
            for dlq_id, entries in zip(page, found, strict=True):
                if entries:
                    yield dlq_id
        return
    flt = selection.filter or Filter()
    low, high = flt.id_range()
    while True:
        letters = _decode(await redis.xrange(dlq, min=low, max=high, count=PAGE))
        for letter in letters:
            if flt.matches(letter):
                yield letter.dlq_id
        if len(letters) < PAGE:
            return
        low = f"({letters[-1].dlq_id}"


async def dry_run(redis: Redis, stream: str, selection: Selection) -> Document:
    """``{"matched": N, "sample": [the first 10 entry ids]}``: what a replay or purge of
    ``selection`` would act on now."""
    matched = 0
    sample: list[str] = []
    async for dlq_id in matching(redis, stream, selection):
        matched += 1
        if len(sample) < SAMPLE:
            sample.append(dlq_id)
    return {"matched": matched, "sample": sample}


def _decode(entries: Any) -> list[DeadLetter]:
    return [
        DeadLetter(entry_id.decode(), {k.decode(errors="replace"): v for k, v in fields.items()})
        for entry_id, fields in entries
    ]
