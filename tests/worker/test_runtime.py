"""The worker runtime against a real redis-server."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import cast

import pytest
from redis.asyncio import Redis

from relay.worker import Event, RetryPolicy, Worker
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, StartWorker, publish

DLQ = f"{STREAM}:dlq"


async def pending(backend_client: Redis) -> int:
    return int((await backend_client.xpending(STREAM, GROUP))["pending"])


async def test_each_entry_is_handled_with_its_parsed_event_and_acknowledged(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    [entry_id] = await publish(backend_client)
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    worker = await start_worker(handler)
    await wait_for(lambda: bool(seen), what="the event handled")
    await wait_for(lambda: _zero(backend_client), what="nothing pending")
    await worker.stop()
    [event] = seen
    assert (event.entry_id, event.stream, event.attempt, event.event) == (
        entry_id, STREAM, 1, "extraction.completed",
    )  # fmt: skip
    assert event.payload["data"]["extraction_id"] == "ex-0"
    assert event.id.startswith("msg_0_") and event.extraction_id == "ex-0"
    assert event.workflow_id == "wf" and isinstance(event.received_at, int)


async def _zero(backend_client: Redis) -> bool:
    return await pending(backend_client) == 0


async def test_a_failing_handler_is_retried_with_backoff_then_acknowledged_once(
    backend_client: Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publish(backend_client)
    attempts: list[tuple[int, float]] = []
    delays: list[float] = []
    real_delay = RetryPolicy.delay

    def recorded_delay(self: RetryPolicy, failed_attempt: int) -> float:
        delays.append(real_delay(self, failed_attempt))
        return delays[-1]

    monkeypatch.setattr(RetryPolicy, "delay", recorded_delay)

    async def flaky(event: Event) -> None:
        attempts.append((event.attempt, time.monotonic()))
        if len(attempts) < 3:
            raise RuntimeError("downstream unavailable")

    policy = RetryPolicy(max_attempts=5, backoff_base=0.4, backoff_max=10)
    worker = await start_worker(flaky, retry=policy)
    await wait_for(lambda: len(attempts) == 3, what="the third attempt")
    await wait_for(lambda: _zero(backend_client), what="nothing pending")
    await worker.stop()

    assert [n for n, _ in attempts] == [1, 2, 3]
    # Equal jitter: between half and all of 0.4 s, then of 0.8 s; and never early.
    assert 0.2 <= delays[0] <= 0.4 and 0.4 <= delays[1] <= 0.8, delays
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True)), (gaps, delays)
    assert await backend_client.xlen(DLQ) == 0
    assert worker.worker.metrics.retried.labels(STREAM, GROUP)._value.get() == 2
    assert worker.worker.metrics.handled.labels(STREAM, GROUP)._value.get() == 1


async def test_a_poison_entry_goes_to_the_dlq_after_exactly_max_attempts(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    [entry_id] = await publish(backend_client)
    calls: list[int] = []

    async def poison(event: Event) -> None:
        calls.append(event.attempt)
        raise ValueError(f"cannot bill {event.extraction_id}")

    await start_worker(poison, retry=RetryPolicy(max_attempts=3, backoff_base=0.01))
    await wait_for(lambda: _has(backend_client, DLQ), what="the poison event dead-lettered")
    await wait_for(lambda: _zero(backend_client), what="nothing pending")
    assert calls == [1, 2, 3]
    [(_, fields)] = await backend_client.xrange(DLQ)
    [(_, original)] = await backend_client.xrange(STREAM)
    for name, value in original.items():
        assert fields[name] == value
    assert fields[b"error"] == b"ValueError: cannot bill ex-0"
    assert fields[b"attempts"] == b"3"
    assert fields[b"group"] == GROUP.encode()
    assert fields[b"original_id"] == entry_id.encode()
    assert abs(int(fields[b"failed_at"]) - time.time() * 1000) < 10_000


async def _has(backend_client: Redis, stream: str, count: int = 1) -> bool:
    return int(await backend_client.xlen(stream)) >= count


@pytest.mark.foreign_entries  # malformed on purpose
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"id": "m", "event": "e"}, "malformed entry: entry lacks field(s): payload"),
        ({"id": "m", "event": "e", "payload": "{oops"}, "malformed entry: payload is not JSON"),
        ({"id": "m", "event": "e", "payload": "[1]"}, "malformed entry: payload is not a JSON"),
    ],
)
async def test_a_malformed_entry_goes_to_the_dlq_at_once(
    backend_client: Redis, start_worker: StartWorker, fields: dict[str, str], error: str
) -> None:
    await backend_client.xadd(STREAM, fields)
    calls: list[Event] = []

    async def handler(event: Event) -> None:
        calls.append(event)

    await start_worker(handler)
    await wait_for(lambda: _has(backend_client, DLQ), what="the undecodable entry dead-lettered")
    [(_, dead)] = await backend_client.xrange(DLQ)
    assert dead[b"error"].decode().startswith(error)
    assert dead[b"attempts"] == b"1"
    assert calls == []
    await wait_for(lambda: _zero(backend_client), what="nothing pending")


async def test_two_workers_in_one_group_handle_every_entry_once(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    ids = await publish(backend_client, 200)
    handled: dict[str, list[str]] = {}

    def handler_for(name: str):  # type: ignore[no-untyped-def]
        async def handler(event: Event) -> None:
            await asyncio.sleep(0.001)
            handled.setdefault(event.entry_id, []).append(name)

        return handler

    await start_worker(handler_for("a"), consumer="a", concurrency=4)
    await start_worker(handler_for("b"), consumer="b", concurrency=4)
    await wait_for(lambda: len(handled) == 200, what="all 200 handled")
    await wait_for(lambda: _zero(backend_client), what="nothing pending")
    assert sorted(handled) == sorted(ids)
    assert all(len(names) == 1 for names in handled.values())
    assert {name for names in handled.values() for name in names} == {"a", "b"}


async def test_a_dead_consumers_entry_is_taken_over_and_the_attempt_counted(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    [entry_id] = await publish(backend_client)
    await backend_client.xgroup_create(STREAM, GROUP, id="0")
    # "ghost" read the entry and died without acknowledging it.
    await backend_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=1)
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    await start_worker(handler, consumer="alive", claim_idle=0.3)
    await wait_for(lambda: bool(seen), what="the abandoned entry handled")
    assert (seen[0].entry_id, seen[0].attempt) == (entry_id, 2)
    await wait_for(lambda: _zero(backend_client), what="nothing pending")


async def test_an_entry_past_its_last_attempt_is_dead_lettered_without_running_again(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """A handler that kills its worker every time must not kill every worker forever."""
    await publish(backend_client)
    await backend_client.xgroup_create(STREAM, GROUP, id="0")
    await backend_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=1)
    for _ in range(2):  # two more deaths: three deliveries in all
        await backend_client.xautoclaim(STREAM, GROUP, "ghost", 0, "0-0")

    async def handler(event: Event) -> None:
        raise AssertionError("must not run")

    await start_worker(handler, claim_idle=0.2, retry=RetryPolicy(max_attempts=3))
    await wait_for(lambda: _has(backend_client, DLQ), what="the exhausted entry dead-lettered")
    [(_, dead)] = await backend_client.xrange(DLQ)
    assert dead[b"attempts"] == b"3"
    assert b"died or was stopped" in dead[b"error"]


async def test_a_long_handler_keeps_its_entry_while_others_wait_to_take_over(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """claim_idle shorter than the handler: heartbeats keep the entry ours."""
    await publish(backend_client)
    runs: list[str] = []

    def slow(name: str):  # type: ignore[no-untyped-def]
        async def handler(event: Event) -> None:
            runs.append(name)
            await asyncio.sleep(1.5)

        return handler

    await start_worker(slow("first"), consumer="first", claim_idle=0.3)
    await wait_for(lambda: bool(runs), what="the first consumer running its handler")
    await start_worker(slow("second"), consumer="second", claim_idle=0.3)
    await wait_for(lambda: _zero(backend_client), what="nothing pending")
    assert runs == ["first"]


async def test_the_group_is_recreated_when_it_vanishes(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    seen: list[str] = []

    async def handler(event: Event) -> None:
        seen.append(event.entry_id)

    await publish(backend_client)
    await start_worker(handler)
    await wait_for(lambda: len(seen) == 1, what="the first event handled")
    # Redis restarted without persistence: stream and group are gone.
    await backend_client.delete(STREAM)
    [after] = await publish(backend_client)
    await wait_for(lambda: after in seen, what="the event after the stream was recreated handled")


async def test_a_pending_entry_whose_message_was_deleted_is_acknowledged(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    [entry_id] = await publish(backend_client)
    await backend_client.xgroup_create(STREAM, GROUP, id="0")
    await backend_client.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=1)
    await backend_client.xdel(STREAM, entry_id)

    async def handler(event: Event) -> None:
        raise AssertionError("nothing to handle")

    await start_worker(handler, claim_idle=0.2)
    await wait_for(lambda: _zero(backend_client), what="nothing pending")
    assert await backend_client.xlen(DLQ) == 0


async def test_stop_lets_the_handler_in_flight_finish_and_acks_it(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client)
    started = asyncio.Event()
    finished: list[bool] = []

    async def handler(event: Event) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(True)

    worker = await start_worker(handler)
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop()
    assert finished == [True]
    assert await _zero(backend_client)


async def test_stop_leaves_an_unfinished_entry_pending_after_the_timeout(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client)
    started = asyncio.Event()

    async def handler(event: Event) -> None:
        started.set()
        await asyncio.sleep(30)

    worker = await start_worker(handler, shutdown_timeout=0.2)
    await asyncio.wait_for(started.wait(), 5)
    await worker.stop()
    assert await pending(backend_client) == 1


async def test_acks_of_handlers_finishing_together_share_one_xack(
    backend_client: Redis, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publish(backend_client, 40)
    calls: list[int] = []
    real_xack = backend_client.xack

    async def counting_xack(stream: str, group: str, *ids: str) -> int:
        calls.append(len(ids))
        return int(await real_xack(stream, group, *ids))

    monkeypatch.setattr(backend_client, "xack", counting_xack)

    handled: list[str] = []

    async def handler(event: Event) -> None:
        await asyncio.sleep(0.01)
        handled.append(event.entry_id)

    await start_worker(handler, concurrency=10)
    await wait_for(lambda: len(handled) == 40, what="all 40 handled")
    await wait_for(lambda: _zero(backend_client), what="nothing pending")
    assert sum(calls) == 40
    assert len(calls) < 40


async def test_the_heartbeat_goes_on_through_the_shutdown_drain(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """A handler finishing after stop(), for longer than claim_idle: no other consumer may
    take its entry over meanwhile."""
    await publish(backend_client)
    runs: list[str] = []
    release = asyncio.Event()

    async def first(event: Event) -> None:
        runs.append("first")
        await release.wait()

    async def second(event: Event) -> None:
        runs.append("second")

    # claim_idle 1 s: short enough to be crossed many times, long enough that a loaded
    # machine's scheduling delays do not look like a stalled worker.
    draining = await start_worker(first, consumer="first", claim_idle=1)
    await wait_for(lambda: runs == ["first"], what="the first consumer running")
    await start_worker(second, consumer="second", claim_idle=1)
    draining.worker.stop()
    await wait_for(lambda: draining.worker.phase == "draining", what="the first consumer draining")
    # Several claim-idle periods of drain, watched through the pending entry's idle time:
    # it keeps being reset by first's heartbeat while second's take-over looks for it.
    resets = 0
    last_idle = -1

    async def heartbeats_seen() -> bool:
        nonlocal resets, last_idle
        items = await backend_client.xpending_range(STREAM, GROUP, min="-", max="+", count=1)
        assert items and items[0]["consumer"] == b"first", f"taken over mid-drain: {runs}"
        idle = int(items[0]["time_since_delivered"])
        resets += idle < last_idle
        last_idle = idle
        return resets >= 4

    await wait_for(heartbeats_seen, what="four heartbeats seen")
    release.set()
    await asyncio.wait_for(draining.task, 10)
    assert runs == ["first"]
    assert await _zero(backend_client)


@pytest.mark.parametrize("make", ["redis", "cluster"])
def test_a_client_decoding_replies_is_refused_at_construction(make: str) -> None:
    """Entries are read as bytes: a ``decode_responses=True`` backend_client is refused with what
    to do, before any entry is read; the same backend_client without it is accepted."""
    from redis.asyncio import RedisCluster

    from relay.worker.client import DecodingClientError

    def build(decode: bool) -> Redis:
        if make == "cluster":
            return cast(Redis, RedisCluster(host="127.0.0.1", port=1, decode_responses=decode))
        return Redis(host="127.0.0.1", port=1, decode_responses=decode)

    async def handler(event: Event) -> None:
        return None

    with pytest.raises(DecodingClientError, match="decode_responses=True"):
        Worker(build(True), stream=STREAM, group=GROUP, handler=handler)
    Worker(build(False), stream=STREAM, group=GROUP, handler=handler)


async def test_every_log_line_about_an_entry_names_it_fully(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    """id, entry_id, stream, group and attempt on each line: an operator greps one id."""
    import structlog

    [entry_id] = await publish(backend_client)
    [(_, fields)] = await backend_client.xrange(STREAM)

    async def handler(event: Event) -> None:
        raise RuntimeError("downstream said no")

    with structlog.testing.capture_logs() as logs:
        running = await start_worker(
            handler, retry=RetryPolicy(max_attempts=2, backoff_base=0.01), outage_threshold=0
        )
        await wait_for(lambda: _dlq_length_is(backend_client, 1), what="the entry dead-lettered")
        await running.stop()
    about = [line for line in logs if line.get("entry_id") == entry_id]
    assert {line["event"] for line in about} >= {"attempt", "retry_scheduled", "dead_lettered"}
    for line in about:
        assert line["id"] == fields[b"id"].decode(), line
        assert (line["stream"], line["group"]) == (STREAM, GROUP), line
        assert line["attempt"] in (1, 2), line


async def _dlq_length_is(client: Redis, length: int) -> bool:
    return int(await client.xlen(DLQ)) == length
