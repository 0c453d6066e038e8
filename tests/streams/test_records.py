"""What each append records for the event trail (append_once.lua), on a real redis-server."""

from __future__ import annotations

import hashlib

import redis
from redis.asyncio import Redis

from relay.redis.keys import dedupe_key, extraction_index_key, trail_records_key
from relay.streams.append import Conflict
from relay.streams.marks import content_mark
from relay.streams.records import parse_record
from relay.streams.writer import Entry, FanoutWriter
from tests.support.entry_schemas import delivery_body

BODY = b'{"event": "extraction.completed", "data": {"extraction_id": "ex 1"}}'


def entry(message_id: str = "msg_1", payload: bytes = BODY, extraction_id: str = "ex 1") -> Entry:
    return Entry(
        id=message_id,
        event="extraction.completed",
        payload=payload,
        received_at=1_711_281_750_000,
        extraction_id=extraction_id,
        workflow_id="",
        content_mark=content_mark("extraction.completed", extraction_id, "processed"),
    )


def record(redis_sync: redis.Redis, stream: str, mark: str = "msg_1") -> object:
    raw = redis_sync.hget(trail_records_key(stream), mark)
    return None if raw is None else parse_record(raw)


async def test_each_stream_records_its_entry_id_and_the_first_the_event(
    client: Redis, redis_sync: redis.Redis
) -> None:
    written = await FanoutWriter(client, dedupe_ttl=60).write(entry(), ["s:a", "s:b"])
    found = parse_record(redis_sync.hget(trail_records_key("s:a"), "msg_1"))
    assert found.full and found.entry_id == written[0]
    assert found.digest == hashlib.sha256(BODY).hexdigest()
    assert (found.duplicates, found.received_at) == (0, 1_711_281_750_000)
    assert (found.event, found.extraction_id) == ("extraction.completed", "ex 1")
    assert redis_sync.hgetall(extraction_index_key("s:a")) == {b"ex 1": b"msg_1"}
    # What the streams share is stored once: the other stream keeps its entry id only.
    other = parse_record(redis_sync.hget(trail_records_key("s:b"), "msg_1"))
    assert (other.full, other.entry_id) == (False, written[1])
    assert not redis_sync.exists(extraction_index_key("s:b"))
    for stream in ("s:a", "s:b"):  # kept exactly as long as the dedupe marks
        assert 0 < redis_sync.pttl(trail_records_key(stream)) <= 60_000


async def test_the_index_lists_every_event_of_an_extraction_once(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry("msg_1"), ["s:a"])
    await writer.write(entry("msg_1"), ["s:a"])  # a duplicate is not listed again
    await writer.write(entry("msg_2", extraction_id="ex 1"), ["s:a"])
    assert redis_sync.hget(extraction_index_key("s:a"), "ex 1") == b"msg_1"  # content mark
    body = delivery_body("extraction.failed", "ex 1")
    failed = Entry("msg_3", "extraction.failed", body, 1, "ex 1", "",
                   content_mark("extraction.failed", "ex 1", "error"))  # fmt: skip
    await writer.write(failed, ["s:a"])
    assert redis_sync.hget(extraction_index_key("s:a"), "ex 1") == b"msg_1\nmsg_3"


async def test_a_sender_controlled_event_and_extraction_id_are_recovered_whole(
    client: Redis, redis_sync: redis.Redis
) -> None:
    odd = Entry("msg_odd", "é 1 2", delivery_body("é 1 2", "ex é 7 "), 5, "ex é 7 ", "", None)
    await FanoutWriter(client, dedupe_ttl=60).write(odd, ["s:a"])
    found = parse_record(redis_sync.hget(trail_records_key("s:a"), "msg_odd"))
    assert (found.event, found.extraction_id, found.received_at) == ("é 1 2", "ex é 7 ", 5)


async def test_redeliveries_are_counted_and_the_same_body_is_no_conflict(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry(), ["s:a", "s:b"])
    for _ in range(3):
        assert await writer.write(entry(), ["s:a", "s:b"]) == [None, None]
    assert record(redis_sync, "s:a").duplicates == 3  # type: ignore[attr-defined]
    assert redis_sync.xlen("s:a") == 1


async def test_the_same_id_with_another_body_is_a_conflict_naming_the_first_digest(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry(), ["s:a"])
    other = entry(payload=BODY + b" ")
    assert await writer.write(other, ["s:a"]) == [Conflict(hashlib.sha256(BODY).hexdigest())]
    assert record(redis_sync, "s:a").duplicates == 1  # type: ignore[attr-defined]
    assert redis_sync.xlen("s:a") == 1  # still nothing written


async def test_a_duplicate_by_content_under_another_id_records_nothing_for_that_id(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry(), ["s:a"])
    assert await writer.write(entry("msg_twin", payload=b"{}"), ["s:a"]) == [None]
    assert record(redis_sync, "s:a", "msg_twin") is None
    assert record(redis_sync, "s:a").duplicates == 0  # type: ignore[attr-defined]


async def test_expired_marks_take_their_records_and_index_entries_with_them(
    client: Redis, redis_sync: redis.Redis
) -> None:
    """At the window's edge: a mark one second past it goes, with what it recorded; one
    inside it stays."""
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry("msg_old", extraction_id="ex-old"), ["s:a", "s:b"])
    await writer.write(entry("msg_kept", extraction_id="ex-kept"), ["s:a", "s:b"])
    now_ms = int(redis_sync.time()[0]) * 1000
    for stream in ("s:a", "s:b"):
        redis_sync.zadd(
            dedupe_key(stream), {"msg_old": now_ms - 61_000, "msg_kept": now_ms - 59_000}
        )
    await writer.write(entry("msg_new", extraction_id="ex-new"), ["s:a", "s:b"])
    for stream in ("s:a", "s:b"):
        assert record(redis_sync, stream, "msg_old") is None
        assert record(redis_sync, stream, "msg_kept") is not None
        assert redis_sync.zscore(dedupe_key(stream), "msg_old") is None
    assert redis_sync.hgetall(extraction_index_key("s:a")) == {
        b"ex-kept": b"msg_kept",
        b"ex-new": b"msg_new",
    }
