"""Dead letters filtered, paged newest first, and counted before acting (real redis-server)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from relay.operator import deadletters
from relay.operator.deadletters import (
    Filter,
    Selection,
    SelectionError,
    dry_run,
    list_dead_letters,
)
from relay.worker.deadletter import dlq_stream
from tests.support.entry_schemas import delivery_body

STREAM = "anyformat:events"


async def add_dead(
    client: Redis, n: int, *, ms: int, group: str = "billing", event: str = "extraction.failed",
    error: str = "RuntimeError: boom",
) -> str:  # fmt: skip
    fields = {
        "id": f"msg_{n}", "event": event, "payload": delivery_body(event, f"ex-{n}").decode(),
        "received_at": str(ms),
        "extraction_id": f"ex-{n}", "workflow_id": "", "error": error, "attempts": "5",
        "group": group, "original_id": f"{n}-0", "failed_at": str(ms),
    }  # fmt: skip
    return (await client.xadd(dlq_stream(STREAM), fields, id=f"{ms}-0")).decode()  # type: ignore[arg-type]


async def every_page(client: Redis, flt: Filter, limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        page = await list_dead_letters(client, STREAM, flt, limit=limit, after=after)
        found += page["dead_letters"]
        if page["next"] is None:
            return found
        after = page["next"]


async def test_newest_first_with_every_field(client: Redis) -> None:
    ids = [await add_dead(client, n, ms=1_711_281_750_000 + n) for n in range(3)]
    page = await list_dead_letters(client, STREAM, Filter())
    assert [letter["entry_id"] for letter in page["dead_letters"]] == ids[::-1]
    assert page["next"] is None
    assert page["dead_letters"][-1] == {
        "entry_id": ids[0], "original_id": "0-0", "id": "msg_0", "event": "extraction.failed",
        "group": "billing", "error": "RuntimeError: boom", "attempts": 5,
        "failed_at": "2024-03-24T12:02:30.000Z",
    }  # fmt: skip


async def test_pages_cover_every_match_once(client: Redis) -> None:
    ids = [await add_dead(client, n, ms=1000 + n, group="a" if n % 3 else "b") for n in range(25)]
    wanted = [i for n, i in enumerate(ids) if n % 3][::-1]
    found = await every_page(client, Filter(group="a"), limit=4)
    assert [letter["entry_id"] for letter in found] == wanted


async def test_each_filter_keeps_what_it_names_and_only_that(client: Redis) -> None:
    a = await add_dead(client, 1, ms=1000, event="extraction.completed")
    b = await add_dead(client, 2, ms=2000, group="audit")
    c = await add_dead(client, 3, ms=3000, error="TimeoutError: Upstream SLOW")
    d = await add_dead(client, 4, ms=4000)

    async def ids(**values: Any) -> list[str]:
        page = await list_dead_letters(client, STREAM, Filter.parse(values))
        return sorted(letter["entry_id"] for letter in page["dead_letters"])

    assert await ids(event="extraction.completed") == [a]
    assert await ids(group="audit") == [b]
    assert await ids(error="upstream slow") == [c]  # a substring, any case
    # The time range is inclusive at both edges, on when the letter reached the DLQ.
    assert await ids(since="2000", until="3000") == [b, c]
    assert await ids(since="1970-01-01T00:00:03Z") == [c, d]
    assert await ids(until="1999") == [a]
    assert await ids(event="", group=None) == [a, b, c, d]  # empty means any


async def test_a_rare_match_answers_a_short_page_with_a_cursor(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadletters, "SCAN_BUDGET", 5)
    monkeypatch.setattr(deadletters, "PAGE", 3)
    ids = [await add_dead(client, n, ms=1000 + n, group="x" if n == 0 else "y") for n in range(12)]
    page = await list_dead_letters(client, STREAM, Filter(group="x"))
    assert page["dead_letters"] == [] and page["next"] is not None
    assert [letter["entry_id"] for letter in await every_page(client, Filter(group="x"), 10)] == [
        ids[0]
    ]


async def test_a_dry_run_counts_what_is_there_now(client: Redis) -> None:
    ids = [await add_dead(client, n, ms=1000 + n, group="a" if n < 12 else "b") for n in range(15)]
    assert await dry_run(client, STREAM, Selection(filter=Filter(group="a"))) == {
        "matched": 12,
        "sample": ids[:10],
    }
    named = Selection.parse({"ids": [ids[0], ids[0], ids[14], "99-0"]})
    assert await dry_run(client, STREAM, named) == {"matched": 2, "sample": [ids[0], ids[14]]}


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"ids": ["1-0"], "filter": {}},
        {"ids": "1-0"},
        {"ids": ["garbage"]},
        {"filter": {"colour": "red"}},
        {"filter": {"since": "yesterday"}},
        {"filter": {"group": ["a"]}},
        {"filter": []},
    ],
)
def test_a_selection_the_operator_must_fix_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(SelectionError):
        Selection.parse(document)


async def test_a_listing_limit_and_cursor_are_checked(client: Redis) -> None:
    with pytest.raises(SelectionError):
        await list_dead_letters(client, STREAM, Filter(), limit=0)
    with pytest.raises(SelectionError):
        await list_dead_letters(client, STREAM, Filter(), after="not-an-id")
