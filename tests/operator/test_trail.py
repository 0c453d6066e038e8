"""The trail of one event, read from what the writers recorded, on a real Redis and a real
Cluster (where the two streams and their DLQs live on different masters)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from relay.operator.trail import event_trail, extraction_events
from relay.streams.marks import content_mark
from relay.streams.writer import Entry, FanoutWriter
from relay.worker.deadletter import dead_letter, dlq_stream, purge, replay
from tests.support.backends import BACKENDS, backend_client
from tests.support.waiting import wait_for

STREAMS = ["anyformat:events", "anyformat:events:extraction.completed"]
ALL = STREAMS


@pytest.fixture(params=BACKENDS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    async for client in backend_client(request):
        yield client


def entry(message_id: str, extraction_id: str = "ex-1", status: str = "processed") -> Entry:
    event = "extraction.completed" if status == "processed" else "extraction.failed"
    body = f'{{"event": "{event}", "data": {{"extraction_id": "{extraction_id}"}}}}'
    return Entry(
        id=message_id,
        event=event,
        payload=body.encode(),
        received_at=1_711_281_750_000,
        extraction_id=extraction_id,
        workflow_id="wf-1",
        content_mark=content_mark(event, extraction_id, status),
    )


async def deliver(client: Redis, stream: str, group: str) -> tuple[str, dict[str, bytes]]:
    """One entry read by ``group``'s consumer ``c`` (now pending)."""
    [[_, [(entry_id, fields)]]] = await client.xreadgroup(group, "c", {stream: ">"}, count=1)
    return entry_id.decode(), {k.decode(): v for k, v in fields.items()}


def groups(trail: dict[str, Any], stream: str) -> dict[str, dict[str, Any]]:
    [found] = [s for s in trail["streams"] if s["stream"] == stream]
    return {g.pop("group"): g for g in found["groups"]}


async def test_an_unknown_id_has_no_trail(client: Redis) -> None:
    await FanoutWriter(client, dedupe_ttl=60).write(entry("msg_1"), STREAMS)
    assert await event_trail(client, ALL, "msg_2") is None


async def test_the_trail_names_each_stream_and_each_groups_state(client: Redis) -> None:
    stream = STREAMS[0]
    for group in ("waiting", "holding", "handled", "failed", "replayed"):
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    written = await FanoutWriter(client, dedupe_ttl=60).write(entry("msg_1"), STREAMS)
    await deliver(client, stream, "holding")
    entry_id, _ = await deliver(client, stream, "handled")
    await client.xack(stream, "handled", entry_id)
    for group in ("failed", "replayed"):
        entry_id, fields = await deliver(client, stream, group)
        await dead_letter(client, stream, group, entry_id, fields, error="boom", attempts=5)
    [(dlq_id, _)] = await client.xrange(dlq_stream(stream), count=1)
    [_, (replayed_id, _)] = await client.xrange(dlq_stream(stream))
    assert await replay(client, stream, replayed_id.decode()) == "replayed"

    trail = await event_trail(client, ALL, "msg_1")

    assert trail is not None
    assert {k: trail[k] for k in ("id", "event", "extraction_id", "workflow_id", "source")} == {
        "id": "msg_1",
        "event": "extraction.completed",
        "extraction_id": "ex-1",
        "workflow_id": "wf-1",
        "source": "webhook",
    }
    assert trail["received_at"] == "2024-03-24T12:02:30.000Z"
    assert trail["duplicates"] == 0
    assert [(s["stream"], s["entry_id"], s["trimmed"]) for s in trail["streams"]] == [
        (stream, written[0], False),
        (STREAMS[1], written[1], False),
    ]
    states = groups(trail, stream)
    assert states["waiting"] == {"state": "waiting"}
    assert states["holding"]["state"] == "in_progress"
    assert states["holding"]["consumer"] == "c" and states["holding"]["attempts"] == 1
    assert states["holding"]["idle_seconds"] >= 0
    assert states["handled"] == {"state": "done"}
    dead = states["failed"]
    assert dead["state"] == "dead_lettered"
    assert dead["dead_letter"]["entry_id"] == dlq_id.decode()
    assert (dead["dead_letter"]["error"], dead["dead_letter"]["attempts"]) == ("boom", 5)
    assert dead["dead_letter"]["failed_at"].endswith("Z")
    again = states["replayed"]
    assert again["state"] == "replayed"
    assert again["dead_letter"]["entry_id"] == replayed_id.decode()
    [(new_id, _)] = await client.xrange(stream, min=f"({written[0]}")
    # The replayed entry is a new one the group has not read yet.
    assert again["replayed_as"] == {"entry_id": new_id.decode(), "state": "waiting"}
    assert groups(trail, STREAMS[1]) == {}  # that stream has no group


async def test_a_replayed_entry_handled_again_is_done(client: Redis) -> None:
    stream = STREAMS[0]
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    await FanoutWriter(client, dedupe_ttl=60).write(entry("msg_1"), STREAMS)
    entry_id, fields = await deliver(client, stream, "g")
    await dead_letter(client, stream, "g", entry_id, fields, error="boom", attempts=5)
    [(dlq_id, _)] = await client.xrange(dlq_stream(stream))
    await replay(client, stream, dlq_id.decode())
    new_id, _ = await deliver(client, stream, "g")
    await client.xack(stream, "g", new_id)
    trail = await event_trail(client, ALL, "msg_1")
    assert trail is not None
    state = groups(trail, stream)["g"]
    assert state["state"] == "replayed"
    assert state["replayed_as"] == {"entry_id": new_id, "state": "done"}


async def test_redeliveries_are_counted(client: Redis) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    for _ in range(3):
        await writer.write(entry("msg_1"), STREAMS)
    trail = await event_trail(client, ALL, "msg_1")
    assert trail is not None and trail["duplicates"] == 2


async def test_a_trimmed_entry_is_trimmed_for_a_group_that_had_not_handled_it(
    client: Redis,
) -> None:
    stream = STREAMS[0]
    for group in ("late", "handled"):
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    written = await FanoutWriter(client, dedupe_ttl=60).write(entry("msg_1"), STREAMS)
    entry_id, _ = await deliver(client, stream, "handled")
    await client.xack(stream, "handled", entry_id)
    await client.xdel(stream, str(written[0]))
    trail = await event_trail(client, ALL, "msg_1")
    assert trail is not None
    assert trail["streams"][0]["trimmed"] is True
    assert groups(trail, stream) == {"late": {"state": "trimmed"}, "handled": {"state": "done"}}
    assert trail["event"] == "extraction.completed"  # from the record, not the entry


async def test_a_purged_dead_letter_is_purged(client: Redis) -> None:
    stream = STREAMS[0]
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    await FanoutWriter(client, dedupe_ttl=60).write(entry("msg_1"), STREAMS)
    entry_id, fields = await deliver(client, stream, "g")
    await dead_letter(client, stream, "g", entry_id, fields, error="boom", attempts=5)
    [(dlq_id, _)] = await client.xrange(dlq_stream(stream))
    await purge(client, stream, None)
    trail = await event_trail(client, ALL, "msg_1")
    assert trail is not None
    assert groups(trail, stream)["g"] == {
        "state": "purged",
        "dead_letter": {"entry_id": dlq_id.decode()},
    }


async def test_a_reconciled_event_says_so(client: Redis) -> None:
    reconciled = entry("reconciled:run-1:processed")
    await FanoutWriter(client, dedupe_ttl=60).write(reconciled, STREAMS)
    trail = await event_trail(client, ALL, "reconciled:run-1:processed")
    assert trail is not None and trail["source"] == "reconciled"


async def test_every_event_of_an_extraction_and_no_other(client: Redis) -> None:
    writer = FanoutWriter(client, dedupe_ttl=60)
    await writer.write(entry("msg_done"), STREAMS)
    await writer.write(entry("msg_failed", status="error"), [STREAMS[0]])
    await writer.write(entry("msg_other", extraction_id="ex-1-other"), STREAMS)
    await writer.write(entry("msg_prefix", extraction_id="ex"), STREAMS)
    found = await extraction_events(client, ALL, "ex-1")
    assert sorted(event["id"] for event in found["events"]) == ["msg_done", "msg_failed"]
    assert {e["id"]: e["event"] for e in found["events"]} == {
        "msg_done": "extraction.completed",
        "msg_failed": "extraction.failed",
    }
    assert all(e["received_at"] == "2024-03-24T12:02:30.000Z" for e in found["events"])
    assert await extraction_events(client, ALL, "ex-2") == {"events": []}
    assert [e["id"] for e in (await extraction_events(client, ALL, "ex"))["events"]] == [
        "msg_prefix"
    ]


async def test_a_real_workers_dead_letter_and_its_replay_show_in_the_trail(client: Redis) -> None:
    """The worker runtime records what the trail reads: its dead letter, then the replay
    the operator ran, handled this time."""
    from relay.operator.deadletters import Filter, Selection
    from relay.operator.jobs import submit
    from relay.worker import Event, RetryPolicy, Worker

    failing = True

    async def handler(event: Event) -> None:
        if failing:
            raise RuntimeError("crm is down")

    await FanoutWriter(client, dedupe_ttl=60).write(entry("msg_1"), STREAMS)
    retry = RetryPolicy(max_attempts=2, backoff_base=0.01)
    worker = Worker(client, stream=STREAMS[0], group="crm", handler=handler, block=0.1,
                    retry=retry, outage_threshold=0)  # fmt: skip
    running = asyncio.create_task(worker.run())

    async def state() -> dict[str, Any]:
        trail = await event_trail(client, ALL, "msg_1")
        assert trail is not None
        return groups(trail, STREAMS[0]).get("crm", {"state": "no group yet"})

    async def until(check: Any) -> dict[str, Any]:
        async def holds() -> dict[str, Any] | None:
            found = await state()
            return found if check(found) else None

        result: dict[str, Any] = await wait_for(holds, what="the group's state in the trail")
        return result

    try:
        dead = await until(lambda s: s["state"] == "dead_lettered")
        assert dead["dead_letter"]["attempts"] == 2
        assert "crm is down" in dead["dead_letter"]["error"]
        failing = False
        job = await submit(client, STREAMS[0], "replay", Selection(filter=Filter(group="crm")))
        assert await job.run() == "done"
        done = await until(lambda s: s.get("replayed_as", {}).get("state") == "done")
        assert done["state"] == "replayed"
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
