"""The atomic dedupe + fan-out step, on a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.asyncio import Redis

from relay.redis.keys import dedupe_key
from relay.redis.scripts import APPEND_ONCE
from relay.streams.errors import StreamsUnavailable
from relay.streams.marks import content_mark
from relay.streams.writer import Entry, FanoutWriter
from tests.support.waiting import wait_for

PAYLOAD = b'{"event": "extraction.completed", "data": {"n": "\xc3\xa9\\u0000"}}  '


def entry(message_id: str = "msg_1", payload: bytes = PAYLOAD, extraction_id: str = "") -> Entry:
    """An entry; with an ``extraction_id`` it carries that event's content mark."""
    return Entry(
        id=message_id,
        event="extraction.completed",
        payload=payload,
        received_at=1_711_281_750_000,
        extraction_id=extraction_id,
        workflow_id="",
        content_mark=content_mark("extraction.completed", extraction_id, "processed"),
    )


async def test_writes_the_contract_fields_byte_for_byte(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    written = await writer.write(entry(extraction_id="ex-1"), ["s:a", "s:b"])
    assert all(written)
    for stream, entry_id in zip(["s:a", "s:b"], written, strict=True):
        [(found_id, fields)] = redis_sync.xrange(stream)
        assert found_id.decode() == entry_id
        assert fields == {
            b"id": b"msg_1",
            b"event": b"extraction.completed",
            b"payload": PAYLOAD,
            b"received_at": b"1711281750000",
            b"extraction_id": b"ex-1",
            b"workflow_id": b"",
        }


async def test_a_second_write_of_the_same_id_writes_nothing(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry(), ["s:a"])
    assert await writer.write(entry(), ["s:a"]) == [None]
    assert redis_sync.xlen("s:a") == 1


async def test_dedupe_is_per_stream_so_a_half_done_fanout_completes(
    client: Redis, redis_sync: redis.Redis
) -> None:
    """A crash between two streams' steps leaves one written; the retry writes the other."""
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry(), ["s:a"])
    result = await writer.write(entry(), ["s:a", "s:b"])
    assert result[0] is None and result[1] is not None
    assert redis_sync.xlen("s:a") == 1 and redis_sync.xlen("s:b") == 1


async def test_fifty_concurrent_copies_make_exactly_one_entry_per_stream(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    results = await asyncio.gather(*(writer.write(entry(), ["s:a", "s:b"]) for _ in range(50)))
    assert sum(r[0] is not None for r in results) == 1
    assert sum(r[1] is not None for r in results) == 1
    assert redis_sync.xlen("s:a") == 1 and redis_sync.xlen("s:b") == 1


async def test_the_same_content_under_another_id_is_a_duplicate(
    client: Redis, redis_sync: redis.Redis
) -> None:
    """Always, not only during a rotation: a copy from the other subscription, or a
    reconciled twin, carries another id but the same content mark."""
    writer = FanoutWriter(client, dedupe_ttl=60)
    assert all(await writer.write(entry("msg_1", extraction_id="ex-1"), ["s:a", "s:b"]))
    twin = entry("msg_2", extraction_id="ex-1")
    assert await writer.write(twin, ["s:a", "s:b"]) == [None, None]
    assert redis_sync.xlen("s:a") == 1 and redis_sync.xlen("s:b") == 1


async def test_another_event_of_the_same_extraction_is_written(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry("msg_1", extraction_id="ex-1"), ["s:a"])
    failed = entry("msg_2", extraction_id="ex-1")
    failed.content_mark = content_mark("extraction.failed", "ex-1", "error")
    assert (await writer.write(failed, ["s:a"]))[0] is not None
    assert (await writer.write(entry("msg_3", extraction_id="ex-2"), ["s:a"]))[0] is not None
    assert redis_sync.xlen("s:a") == 3


async def test_without_an_extraction_id_only_the_message_id_counts(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry("msg_1"), ["s:a"])
    assert (await writer.write(entry("msg_2"), ["s:a"]))[0] is not None
    assert redis_sync.zrange(dedupe_key("s:a"), 0, -1) == [b"msg_1", b"msg_2"]


async def test_both_marks_are_recorded_with_the_entry_and_share_its_window(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    written = await writer.write(entry("msg_1", extraction_id="ex-1"), ["s:a"])
    mark = content_mark("extraction.completed", "ex-1", "processed")
    [(entry_id, _)] = redis_sync.xrange("s:a")
    assert written == [entry_id.decode()]
    id_score = redis_sync.zscore(dedupe_key("s:a"), "msg_1")
    assert id_score is not None and redis_sync.zscore(dedupe_key("s:a"), mark) == id_score
    assert 0 < redis_sync.pttl(dedupe_key("s:a")) <= 60_000  # the window, not forever


async def test_a_content_mark_expires_with_the_dedupe_window(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=1)
    await writer.write(entry("msg_1", extraction_id="ex-1"), ["s:a"])
    await wait_for(lambda: not redis_sync.exists(dedupe_key("s:a")), what="the marks expired")
    assert (await writer.write(entry("msg_2", extraction_id="ex-1"), ["s:a"]))[0] is not None
    assert redis_sync.xlen("s:a") == 2


def backdate(redis_sync: redis.Redis, key: str, past_window_ms: int, window_ms: int) -> None:
    """Score every mark of ``key`` as written ``window_ms + past_window_ms`` ago by Redis's
    clock (negative: still inside the window): the window's edge without waiting for it."""
    seconds, micros = redis_sync.time()
    now_ms = seconds * 1000 + micros // 1000
    marks = redis_sync.zrange(key, 0, -1)
    redis_sync.zadd(key, dict.fromkeys(marks, now_ms - window_ms - past_window_ms), xx=True)


async def test_the_mark_expires_at_the_edge_of_the_dedupe_window(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry(), ["s:a"])
    backdate(redis_sync, dedupe_key("s:a"), -1000, 60_000)  # a second before the window ends
    assert await writer.write(entry(), ["s:a"]) == [None]  # still a duplicate
    backdate(redis_sync, dedupe_key("s:a"), 1, 60_000)  # a millisecond past it
    assert (await writer.write(entry(), ["s:a"]))[0] is not None
    assert redis_sync.xlen("s:a") == 2


async def test_old_marks_are_pruned_from_a_busy_stream(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry("old"), ["s:a"])
    backdate(redis_sync, dedupe_key("s:a"), 1, 60_000)
    await writer.write(entry("new"), ["s:a"])
    assert redis_sync.zrange(dedupe_key("s:a"), 0, -1) == [b"new"]


async def test_appends_never_trim_the_stream(client: Redis, redis_sync: redis.Redis) -> None:
    # Trimming is relay.streams.trim's job: it knows what the consumer groups still need.
    writer = FanoutWriter(client, dedupe_ttl=60)
    for n in range(500):
        await writer.write(entry(f"m{n}"), ["s:a"])
    assert redis_sync.xlen("s:a") == 500


async def test_the_script_is_reloaded_after_the_cache_is_flushed(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.load_script()
    redis_sync.script_flush()
    assert redis_sync.script_exists(APPEND_ONCE.sha) == [False]
    assert (await writer.write(entry(), ["s:a", "s:b"]))[1] is not None
    assert redis_sync.script_exists(APPEND_ONCE.sha) == [True]
    assert redis_sync.xlen("s:a") == 1 and redis_sync.xlen("s:b") == 1


async def test_a_failing_step_writes_nothing_to_that_stream(
    client: Redis, redis_sync: redis.Redis
) -> None:
    """The dedupe set is read before the stream is written: a wrong-typed key fails early."""
    redis_sync.set(dedupe_key("s:a"), "not a sorted set")
    writer = FanoutWriter(client, dedupe_ttl=60)
    with pytest.raises(StreamsUnavailable) as failed:
        await writer.write(entry(), ["s:a"])
    assert "WRONGTYPE" in str(failed.value.__cause__)
    assert redis_sync.xlen("s:a") == 0


async def test_one_script_call_covers_every_stream_of_a_delivery(
    client: Redis, redis_sync: redis.Redis
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.load_script()
    redis_sync.config_resetstat()
    written = await writer.write(entry(), ["s:a", "s:b", "s:c"])
    assert all(written)
    assert redis_sync.info("commandstats")["cmdstat_evalsha"]["calls"] == 1
    assert [redis_sync.xlen(s) for s in ("s:a", "s:b", "s:c")] == [1, 1, 1]


async def test_an_error_on_a_later_stream_keeps_the_earlier_ones_whole_and_a_retry_completes(
    client: Redis, redis_sync: redis.Redis
) -> None:
    """Each stream is settled on its own inside the one call: s:a gets its entry and its
    mark, s:b fails before writing; once s:b is repaired, the retry writes only s:b."""
    redis_sync.set(dedupe_key("s:b"), "not a sorted set")
    writer = FanoutWriter(client, dedupe_ttl=60)
    with pytest.raises(StreamsUnavailable) as failed:
        await writer.write(entry(), ["s:a", "s:b"])
    assert "WRONGTYPE" in str(failed.value.__cause__)
    assert redis_sync.xlen("s:a") == 1 and redis_sync.xlen("s:b") == 0
    assert redis_sync.zscore(dedupe_key("s:a"), "msg_1") is not None
    redis_sync.delete(dedupe_key("s:b"))
    retried = await writer.write(entry(), ["s:a", "s:b"])
    assert retried[0] is None and retried[1] is not None
    assert redis_sync.xlen("s:a") == 1 and redis_sync.xlen("s:b") == 1
