"""Micro-batching: shared round trips, separate outcomes, errors confined to their batch."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from relay.streams.errors import StreamsUnavailable
from relay.streams.marks import content_mark
from relay.streams.writer import Entry, FanoutWriter
from tests.support.entry_schemas import relay_entry
from tests.support.redis_server import RedisServer


def entry(message_id: str) -> Entry:
    """A distinct event per id: its own extraction, so its own content mark."""
    mark = content_mark("extraction.completed", f"ex-{message_id}", "processed")
    return relay_entry(message_id, extraction_id=f"ex-{message_id}", content_mark=mark)


async def test_concurrent_deliveries_share_round_trips_and_keep_their_outcomes(
    client: Redis,
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry("seen-before"), ["s:a", "s:b"])
    before = writer.batcher.batches
    ids = [f"m{n}" for n in range(40)] + ["seen-before"] + ["m7"]  # one duplicate in-batch
    results = await asyncio.gather(*(writer.write(entry(i), ["s:a", "s:b"]) for i in ids))
    assert writer.batcher.batches - before < len(ids) / 4  # batched, not one trip each
    outcomes = [all(r is not None for r in result) for result in results]
    assert outcomes[:40] == [True] * 40
    assert outcomes[40:] == [False, False]  # duplicate across batches, and within one
    assert all(result == [None, None] for result in results[40:])
    assert await client.xlen("s:a") == 41 and await client.xlen("s:b") == 41


async def test_a_redis_error_fails_only_its_batch_and_the_next_one_succeeds() -> None:
    server = RedisServer()
    server.start()
    client = Redis.from_url(server.url, socket_timeout=2)
    try:
        writer = FanoutWriter(client, dedupe_ttl=60)
        await writer.write(entry("warm"), ["s:a"])
        server.stop()
        failed = await asyncio.gather(
            *(writer.write(entry(f"f{n}"), ["s:a"]) for n in range(5)), return_exceptions=True
        )
        assert all(isinstance(result, Exception) for result in failed)
        server.start()  # empty again: no script, no streams
        ok = await asyncio.gather(*(writer.write(entry(f"f{n}"), ["s:a"]) for n in range(5)))
        assert all(result[0] is not None for result in ok)
        assert await client.xlen("s:a") == 5
    finally:
        await client.aclose()
        server.close()


async def test_an_error_reply_fails_only_the_delivery_it_belongs_to(
    client: Redis,
) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await client.set("relay:dedupe:{broken}:broken", "not a sorted set")
    good, bad = await asyncio.gather(
        writer.write(entry("good"), ["s:a"]),
        writer.write(entry("bad"), ["broken"]),
        return_exceptions=True,
    )
    assert isinstance(good, list) and good[0] is not None
    assert isinstance(bad, StreamsUnavailable) and bad.error == "ResponseError"
    assert "WRONGTYPE" in str(bad.__cause__)
