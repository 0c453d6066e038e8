"""Retention in a running relay, default trimming period: a lagging group keeps every entry,
and the stream shrinks back to its target within about ten seconds of the acknowledgements."""

from __future__ import annotations

import asyncio

import aiohttp
import redis

from tests.conftest import StartRelay
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for

FIREHOSE = "anyformat:events"
PER_EVENT = "anyformat:events:extraction.completed"  # no group reads it
SHRINK_DEADLINE = 10.0  # the contract: "within about ten seconds of the acknowledgements"


async def deliver(http: aiohttp.ClientSession, url: str, count: int) -> None:
    async def post() -> None:
        body = event_body()
        async with http.post(url, data=body, headers=sign(body)) as response:
            assert response.status == 200

    await asyncio.gather(*(post() for _ in range(count)))


async def test_a_lagging_group_keeps_everything_and_trimming_resumes_once_it_catches_up(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    redis_sync.xgroup_create(FIREHOSE, "billing", id="0", mkstream=True)
    server = await start_relay(redis_url, RELAY_STREAM_MAXLEN=20)
    await deliver(http, f"http://127.0.0.1:{server.public_port}/webhooks/anyformat", 100)

    # A trimming pass has run once the group-less stream is at its target; the lagging
    # group's stream was trimmed in the same pass (streams go in name order) and kept all.
    await wait_for(
        lambda: redis_sync.xlen(PER_EVENT) == 20,
        what="the group-less stream trimmed",
        within=SHRINK_DEADLINE,
    )
    assert redis_sync.xlen(FIREHOSE) == 100
    read = redis_sync.xreadgroup("billing", "c1", {FIREHOSE: ">"}, count=1000)
    entries = read[0][1]
    assert len(entries) == 100
    assert redis_sync.xlen(FIREHOSE) == 100  # read, not acknowledged: still needed

    redis_sync.xack(FIREHOSE, "billing", *(entry_id for entry_id, _ in entries))
    await wait_for(
        lambda: redis_sync.xlen(FIREHOSE) == 20,
        what="the caught-up stream trimmed",
        within=SHRINK_DEADLINE,
    )
    assert [i for i, _ in redis_sync.xrange(FIREHOSE)] == [i for i, _ in entries[80:]]
