"""What a worker's handler sees of a recovered event: ``Event.source``."""

from __future__ import annotations

import time

import redis

from relay.reconcile.sweep import Sweep
from relay.reconcile.window import Window
from relay.worker.event import decode_fields, parse_entry
from tests.reconcile.conftest import Organisation


async def test_a_handler_tells_a_recovered_event_from_a_delivered_one(
    sweep: Sweep, org: Organisation, redis_sync: redis.Redis
) -> None:
    workflow = org.workflow()
    run = org.finished(workflow, "error", seconds_ago=60)
    await sweep.run(Window(time.time() - 3600, time.time()))
    [(entry_id, raw)] = redis_sync.xrange("anyformat:events")
    event = parse_entry("anyformat:events", entry_id.decode(), decode_fields(raw), attempt=1)
    assert (event.source, event.id, event.event) == (
        "reconciled", f"reconciled:{run}:error", "extraction.failed")  # fmt: skip
    assert event.extraction_id == run and event.workflow_id == workflow
    assert event.payload["data"]["extraction_id"] == run

    delivered = {key: value for key, value in decode_fields(raw).items() if key != "source"}
    assert parse_entry("anyformat:events", "1-0", delivered, attempt=1).source == "webhook"
