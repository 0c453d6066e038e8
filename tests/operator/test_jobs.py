"""Replay and purge jobs: each dead letter acted on once (never zero, never twice), one job
per stream, cancel, and a cut-off job resubmitted doing only the rest. On a real Redis and a
real Cluster (the job, its lock, the stream and its DLQ in different slots)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from redis.asyncio import Redis

from relay.operator import jobs
from relay.operator.deadletters import Filter, Selection
from relay.operator.jobs import JobRunning, cancel, job_status, submit
from relay.redis.keys import job_lock_key as lock_key
from relay.worker.deadletter import dlq_stream, replay
from tests.support.entry_schemas import dead_letter_fields

STREAM = "anyformat:events"


async def add_dead(either_client: Redis, count: int, group: str = "billing") -> list[str]:
    ids = []
    for n in range(count):
        fields = dead_letter_fields(n, id=f"msg_{group}_{n}", group=group, error="boom")
        ids.append((await either_client.xadd(dlq_stream(STREAM), fields)).decode())  # type: ignore[arg-type]
    return ids


async def ids_on_stream(either_client: Redis) -> Counter[str]:
    return Counter(fields[b"id"].decode() for _, fields in await either_client.xrange(STREAM))


async def test_a_replay_job_puts_back_each_match_once_and_leaves_the_rest(
    either_client: Redis,
) -> None:
    await add_dead(either_client, 130, group="billing")
    others = await add_dead(either_client, 3, group="audit")
    job = await submit(either_client, STREAM, "replay", Selection(filter=Filter(group="billing")))
    assert job.total == 130
    assert await job.run() == "done"
    on_stream = await ids_on_stream(either_client)
    assert set(on_stream) == {f"msg_billing_{n}" for n in range(130)}
    assert set(on_stream.values()) == {1}
    remaining = [
        entry_id.decode() for entry_id, _ in await either_client.xrange(dlq_stream(STREAM))
    ]
    assert remaining == others
    assert await job_status(either_client, job.id) == {
        "job": job.id, "action": "replay", "stream": STREAM, "state": "done",
        "total": 130, "done": 130, "skipped": 0, "failed": 0,
    }  # fmt: skip
    assert await either_client.get(lock_key(STREAM)) is None  # the stream is free again


async def test_the_same_job_submitted_twice_acts_once(either_client: Redis) -> None:
    ids = await add_dead(either_client, 5)
    for _ in range(2):
        job = await submit(either_client, STREAM, "replay", Selection(ids=tuple(ids)))
        await job.run()
    status = await job_status(either_client, job.id)
    assert status is not None and (status["total"], status["done"]) == (0, 0)
    assert set((await ids_on_stream(either_client)).values()) == {1}
    assert len(await ids_on_stream(either_client)) == 5


async def test_a_second_job_on_the_stream_is_refused_while_one_runs(either_client: Redis) -> None:
    await add_dead(either_client, 2)
    first = await submit(either_client, STREAM, "purge", Selection(filter=Filter()))
    with pytest.raises(JobRunning) as refused:
        await submit(either_client, STREAM, "replay", Selection(filter=Filter()))
    assert refused.value.job == first.id
    await first.run()
    second = await submit(either_client, STREAM, "replay", Selection(filter=Filter()))  # free again
    assert second.total == 0
    await second.run()


async def test_two_relays_racing_past_the_lock_still_replay_each_once(either_client: Redis) -> None:
    """Were the lock lost (it lapsed), the replay marks still make each entry go back once."""
    await add_dead(either_client, 150)
    first = await submit(either_client, STREAM, "replay", Selection(filter=Filter()))
    await either_client.delete(lock_key(STREAM))
    second = await submit(either_client, STREAM, "replay", Selection(filter=Filter()))
    await asyncio.gather(first.run(), second.run())
    on_stream = await ids_on_stream(either_client)
    assert len(on_stream) == 150 and set(on_stream.values()) == {1}
    done = [(await job_status(either_client, j.id)) or {} for j in (first, second)]
    assert sum(d["done"] for d in done) == 150
    assert await either_client.xlen(dlq_stream(STREAM)) == 0


async def test_a_cancelled_job_stops_within_a_page_and_says_so(
    either_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "FLUSH_EVERY", 10)
    await add_dead(either_client, 30)
    job = await submit(either_client, STREAM, "purge", Selection(filter=Filter()))
    xdel = either_client.xdel
    calls = 0

    async def cancelling_on_the_15th(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 15:  # an operator cancels while the second page is under way
            await cancel(either_client, job.id)
        return await xdel(*args)

    monkeypatch.setattr(either_client, "xdel", cancelling_on_the_15th)
    assert await job.run() == "cancelled"
    status = await job_status(either_client, job.id)
    assert status is not None
    assert (status["state"], status["done"]) == ("cancelled", 20)  # the page is finished
    assert await either_client.xlen(dlq_stream(STREAM)) == 10


async def test_a_job_cancelled_before_it_starts_does_nothing(either_client: Redis) -> None:
    await add_dead(either_client, 3)
    job = await submit(either_client, STREAM, "purge", Selection(filter=Filter()))
    cancelled = await cancel(either_client, job.id)
    assert cancelled is not None and cancelled["state"] == "cancelled"
    assert await job.run() == "cancelled"
    assert await either_client.xlen(dlq_stream(STREAM)) == 3
    assert await either_client.get(lock_key(STREAM)) is None


async def test_a_job_cut_off_is_failed_and_a_resubmit_does_only_the_rest(
    either_client: Redis,
) -> None:
    ids = await add_dead(either_client, 10)
    cut = await submit(either_client, STREAM, "replay", Selection(filter=Filter()))
    for dlq_id in ids[:4]:  # what it got through before its process died
        await replay(either_client, STREAM, dlq_id)
    await either_client.delete(lock_key(STREAM))  # its lock lapsed
    status = await job_status(either_client, cut.id)
    assert status is not None and status["state"] == "failed"
    assert status["error"].startswith("interrupted")
    assert await cancel(either_client, cut.id) == status  # nothing left to cancel
    again = await submit(either_client, STREAM, "replay", Selection(filter=Filter()))
    assert again.total == 6
    assert await again.run() == "done"
    on_stream = await ids_on_stream(either_client)
    assert len(on_stream) == 10 and set(on_stream.values()) == {1}


async def test_a_purge_job_deletes_what_it_selects(either_client: Redis) -> None:
    ids = await add_dead(either_client, 4)
    job = await submit(either_client, STREAM, "purge", Selection(ids=(ids[1], ids[2], "1-1")))
    assert job.total == 2
    await job.run()
    status = await job_status(either_client, job.id)
    assert status is not None and (status["done"], status["skipped"]) == (2, 0)
    left = [entry_id.decode() for entry_id, _ in await either_client.xrange(dlq_stream(STREAM))]
    assert left == [ids[0], ids[3]]


async def test_an_unknown_job_is_none(either_client: Redis) -> None:
    assert await job_status(either_client, "nope") is None
    assert await cancel(either_client, "nope") is None
