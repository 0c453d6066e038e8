"""One sweep against the fake API and a real Redis: what it writes, where, and only once."""

from __future__ import annotations

import json
import time

import redis
from redis.asyncio import Redis

from relay.ingest.envelope import parse_envelope
from relay.reconcile.api import RunsApi
from relay.reconcile.sweep import Sweep
from relay.reconcile.window import Window
from relay.streams.routes import Router
from relay.streams.writer import Entry, FanoutWriter
from tests.reconcile.conftest import EVENTS, Organisation, ago
from tests.reconcile.relays import webhook_body
from tests.support.fake_anyformat import FakeAnyFormat

HOUR = 3600.0
STREAMS = (
    "anyformat:events",
    "anyformat:events:extraction.completed",
    "anyformat:events:extraction.failed",
)


def last(seconds: float) -> Window:
    now = time.time()
    return Window(now - seconds, now)


def entries(redis_sync: redis.Redis, stream: str) -> dict[str, dict[str, str]]:
    """The stream's entries by extraction id, fields decoded."""
    found: dict[str, dict[str, str]] = {}
    for _, raw in redis_sync.xrange(stream):
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        assert fields["extraction_id"] not in found, "an event written twice"
        found[fields["extraction_id"]] = fields
    return found


def routed(org: Organisation, redis_sync: redis.Redis) -> None:
    """Every expected event exactly once in each of its streams, nothing else anywhere."""
    everything = entries(redis_sync, STREAMS[0])
    assert {run: f["event"] for run, f in everything.items()} == org.expected
    for event in ("extraction.completed", "extraction.failed"):
        per_event = entries(redis_sync, f"anyformat:events:{event}")
        assert set(per_event) == {run for run, e in org.expected.items() if e == event}


async def test_finished_runs_in_the_window_become_their_events_in_every_routed_stream(
    sweep: Sweep, org: Organisation, redis_sync: redis.Redis
) -> None:
    workflow, other_workflow = org.workflow(), org.workflow()
    org.finished(workflow, "processed", seconds_ago=60)
    org.finished(workflow, "error", seconds_ago=120)
    org.finished(other_workflow, "processed", seconds_ago=HOUR - 5)
    org.ignored(workflow, "cancelled", seconds_ago=30)  # no event exists for it
    org.ignored(workflow, "in_progress", seconds_ago=30)
    org.ignored(workflow, "queued", seconds_ago=30)
    org.ignored(other_workflow, "processed", seconds_ago=HOUR + 5)  # before the window

    result = await sweep.run(last(HOUR))

    routed(org, redis_sync)
    assert len(result.recovered) == 3 and result.present == 0
    assert result.in_window == 4 and result.not_subscribed == 1  # the cancelled one
    assert result.workflows == 2 and result.api_calls == 3


async def test_an_entry_carries_the_contracts_id_payload_and_source(
    sweep: Sweep, org: Organisation, fake_api: FakeAnyFormat, redis_sync: redis.Redis
) -> None:
    workflow = org.workflow()
    done = org.finished(workflow, "processed", seconds_ago=60)
    failed = org.finished(workflow, "error", seconds_ago=60)
    await sweep.run(last(HOUR))
    stored = entries(redis_sync, "anyformat:events")
    [run] = [r for r in fake_api.runs[workflow] if r["id"] == done]

    completed = stored[done]
    assert completed["id"] == f"reconciled:{done}:processed"
    assert completed["source"] == "reconciled" and completed["workflow_id"] == workflow
    assert completed["event"] == "extraction.completed"
    assert int(completed["received_at"]) > 0
    assert json.loads(completed["payload"]) == {
        "event": "extraction.completed",
        "timestamp": run["updated_at"],
        "data": {"extraction_id": done, "status": "processed", "workflow_id": workflow,
                 "processed_at": run["updated_at"]},
    }  # fmt: skip
    payload = json.loads(stored[failed]["payload"])
    assert stored[failed]["id"] == f"reconciled:{failed}:error"
    assert payload["event"] == "extraction.failed"
    assert payload["data"]["status"] == "error" and payload["data"]["processed_at"] is None


async def test_a_second_sweep_writes_nothing_new(
    sweep: Sweep, org: Organisation, redis_sync: redis.Redis
) -> None:
    workflow = org.workflow()
    for seconds in (10, 20, 30):
        org.finished(workflow, "processed", seconds_ago=seconds)
    org.finished(workflow, "error", seconds_ago=40)
    first = await sweep.run(last(HOUR))
    again = await sweep.run(last(HOUR))
    assert len(first.recovered) == 4
    assert again.recovered == [] and again.present == 4
    routed(org, redis_sync)


async def test_a_dry_run_writes_nothing_and_tells_what_a_real_one_would(
    sweep: Sweep, org: Organisation, redis_sync: redis.Redis
) -> None:
    workflow = org.workflow()
    org.finished(workflow, "processed", seconds_ago=10)
    org.finished(workflow, "error", seconds_ago=20)
    dry = await sweep.run(last(HOUR), dry_run=True)
    assert redis_sync.keys("*") == []
    assert len(dry.recovered) == 2 and dry.counts()["would_write"] == 2
    assert {r.streams for r in dry.recovered} == {
        (STREAMS[0], STREAMS[1]),
        (STREAMS[0], STREAMS[2]),
    }
    real = await sweep.run(last(HOUR))
    assert [r.entry.id for r in real.recovered] == [r.entry.id for r in dry.recovered]
    after = await sweep.run(last(HOUR), dry_run=True)
    assert after.recovered == [] and after.present == 2


async def test_only_subscribed_events_are_written(
    sweep: Sweep, org: Organisation, redis_sync: redis.Redis
) -> None:
    from relay.reconcile.sweep import Sweep as SweepClass

    workflow = org.workflow()
    org.finished(workflow, "processed", seconds_ago=10)
    failed = org.finished(workflow, "error", seconds_ago=10)
    del org.expected[failed]
    only_completed = SweepClass(
        sweep._api, sweep._redis, sweep._writer, sweep._router, ["extraction.completed"]
    )
    result = await only_completed.run(last(HOUR))
    assert result.not_subscribed == 1
    routed(org, redis_sync)


async def test_a_long_walk_stops_at_the_first_page_created_before_the_margin(
    sweep: Sweep, org: Organisation, fake_api: FakeAnyFormat
) -> None:
    """A day's margin for long runs: a run created 23 h before the window and finished in it
    is found; pages wholly older than the margin are not fetched."""
    workflow = org.workflow()
    long_run = fake_api.add_run(workflow, "processed", ago(HOUR + 23 * HOUR), ago(60))
    org.expected[long_run] = "extraction.completed"
    for i in range(350):  # four pages in all, of runs from well before the margin
        fake_api.add_run(workflow, "processed", ago(3 * 86400 + i), ago(3 * 86400 + i))
    result = await sweep.run(last(HOUR))
    assert [r.entry.extraction_id for r in result.recovered] == [long_run]
    # The workflows, then the page with the long run, which reaches past the margin: stop.
    assert result.api_calls == 1 + 1 and result.runs_seen == 100


async def test_an_event_whose_webhook_came_is_skipped_and_a_late_webhook_is_a_duplicate(
    sweep: Sweep, org: Organisation, redis_sync: redis.Redis, client: Redis
) -> None:
    """Both directions through the ingest's own marks (what the handler writes)."""
    writer = FanoutWriter(client, dedupe_ttl=3600)

    async def webhook(run_id: str, workflow_id: str, status: str) -> list[str | None]:
        body = webhook_body(run_id, workflow_id, status)
        envelope = parse_envelope(body)
        entry = Entry(f"msg_{run_id}_{status}", envelope.event, body, 0, envelope.extraction_id,
                      envelope.workflow_id, envelope.content_mark())  # fmt: skip
        return await writer.write(entry, Router("anyformat").streams_for(entry.event, ""))

    workflow = org.workflow()
    delivered = org.finished(workflow, "processed", seconds_ago=60)
    missed = org.finished(workflow, "error", seconds_ago=60)
    assert None not in await webhook(delivered, workflow, "processed")

    result = await sweep.run(last(HOUR))
    assert [r.entry.extraction_id for r in result.recovered] == [missed]
    assert result.present == 1
    assert await webhook(missed, workflow, "error") == [None, None]  # the late webhook
    routed(org, redis_sync)
    [first] = [f for f in entries(redis_sync, STREAMS[0]).values() if "source" not in f]
    assert first["id"] == f"msg_{delivered}_processed"  # the webhook's entry stays as it was


async def test_traced_a_sweep_is_one_internal_span_parent_of_a_send_span_per_entry_written(
    runs_api: RunsApi, client: Redis, org: Organisation, redis_sync: redis.Redis
) -> None:
    from tests.support.tracing import ids_in, in_memory_tracing, traceparent_of

    workflow = org.workflow()
    org.finished(workflow, "processed", seconds_ago=60)
    org.finished(workflow, "error", seconds_ago=120)
    with in_memory_tracing() as (tracing, exporter):
        writer = FanoutWriter(client, dedupe_ttl=3600, tracing=tracing)
        sweep = Sweep(runs_api, client, writer, Router("anyformat"), EVENTS)
        await sweep.run(last(HOUR))
        spans = exporter.get_finished_spans()
    [swept] = [s for s in spans if s.name == "reconcile sweep"]
    assert swept.kind.name == "INTERNAL" and swept.parent is None
    sends = {traceparent_of(s): s for s in spans if s is not swept}
    assert len(sends) == 4  # two events, each in anyformat:events and its own stream
    for send in sends.values():
        assert send.kind.name == "PRODUCER"
        assert send.parent is not None and send.parent.span_id == swept.context.span_id
    carried = [
        ids_in(fields[b"traceparent"])
        for stream in STREAMS
        for _, fields in redis_sync.xrange(stream)
    ]
    assert sorted(carried) == sorted(sends)
