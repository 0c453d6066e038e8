"""The outage scenario end to end: `relay run` processes, `relay reconcile`, a real Redis.

Time is simulated where a test cannot wait: the shared heartbeat is set back an hour (as if
the relays had stopped then) and the fake API's runs carry timestamps inside that hour.
"""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import pytest
import redis

from tests.conftest import StartRelay
from tests.reconcile.conftest import Organisation
from tests.reconcile.relays import (
    STATE,
    by_extraction,
    deliver,
    only_secret,
    public_url,
    reconciling,
    set_heartbeat,
    webhook_body,
)
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.registering import process_env
from tests.support.waiting import wait_for

MINUTE = 60.0
STREAMS = ("anyformat:events", "anyformat:events:extraction.completed",
           "anyformat:events:extraction.failed")  # fmt: skip


def relay_reconcile(env: dict[str, str], *args: str) -> str:
    """``relay reconcile ARGS`` as an operator runs it; its whole output."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ANYFORMAT_"))}
    done = subprocess.run(
        [sys.executable, "-m", "relay", "reconcile", *args],
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert API_KEY not in output
    return output


def snapshot(client: redis.Redis) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Per stream, per extraction id: (id, source) of each entry."""
    return {
        stream: {
            run: [(f["id"], f.get("source", "webhook")) for f in found]
            for run, found in by_extraction(client, stream).items()
        }
        for stream in STREAMS
    }


@pytest.mark.process
async def test_events_finished_while_the_relays_were_down_are_recovered_once(
    own_redis: RedisServer,
    fake_api: FakeAnyFormat,
    org: Organisation,
    processes: list[RelayProcess],
    http: aiohttp.ClientSession,
) -> None:
    client = own_redis.client()
    env = process_env(own_redis, fake_api, RELAY_SECRET_REFRESH_INTERVAL="0.1")
    first = RelayProcess(env).start()
    processes.append(first)
    secret = only_secret(fake_api)
    invoices, receipts = org.workflow(), org.workflow()

    # Before the stop (an hour ago): runs that ended and were delivered.
    delivered = {
        org.finished(invoices, "processed", seconds_ago=62 * MINUTE): (invoices, "processed"),
        org.finished(receipts, "error", seconds_ago=61 * MINUTE): (receipts, "error"),
    }
    for run, (workflow, status) in delivered.items():
        assert await deliver(http, first.url, secret, webhook_body(run, workflow, status)) == (
            200, "accepted")  # fmt: skip
    assert first.terminate() == 0
    set_heartbeat(client, 60 * MINUTE)

    # While down: runs that ended, and runs that must not become events.
    missed = {
        org.finished(invoices, "processed", seconds_ago=50 * MINUTE): invoices,
        org.finished(receipts, "processed", seconds_ago=20 * MINUTE): receipts,
        org.finished(invoices, "error", seconds_ago=10 * MINUTE): invoices,
    }
    org.ignored(invoices, "cancelled", seconds_ago=30 * MINUTE)
    org.ignored(receipts, "in_progress", seconds_ago=5 * MINUTE)
    org.ignored(receipts, "queued", seconds_ago=5 * MINUTE)
    org.ignored(invoices, "processed", seconds_ago=180 * MINUTE)  # long before the outage

    second = RelayProcess(env).start()
    processes.append(second)
    await wait_for(lambda: client.hget(STATE, "last_done"), what="the start-up sweep")
    await wait_for(lambda: '"reason":"gap"' in second.output(), what="the sweep's log line")
    assert "reception_gap" in second.output()

    everything = by_extraction(client, STREAMS[0])
    assert {run: len(found) for run, found in everything.items()} == {
        run: 1 for run in org.expected
    }
    for run in delivered:
        assert "source" not in everything[run][0]  # the webhook's own entry, not doubled
    for run in missed:
        [entry] = everything[run]
        assert entry["source"] == "reconciled" and entry["id"].startswith(f"reconciled:{run}:")
    for event, stream in (("extraction.completed", STREAMS[1]), ("extraction.failed", STREAMS[2])):
        assert {run: len(f) for run, f in by_extraction(client, stream).items()} == {
            run: 1 for run, e in org.expected.items() if e == event
        }

    # AnyFormat's retry of a recovered event, arriving late: a duplicate.
    late = next(iter(missed))
    body = webhook_body(late, missed[late], "processed")
    assert await deliver(http, second.url, secret, body) == (200, "duplicate")

    # By hand: nothing left to recover, whether dry or not.
    before = snapshot(client)
    assert "would write 0 event(s), 5 already present" in relay_reconcile(
        env, "--since", "2h", "--dry-run")  # fmt: skip
    assert "wrote 0 event(s), 5 already present" in relay_reconcile(env, "--since", "2h")
    assert snapshot(client) == before


@pytest.mark.process
def test_relay_reconcile_dry_run_writes_nothing_and_a_second_run_nothing_new(
    own_redis: RedisServer, fake_api: FakeAnyFormat, org: Organisation
) -> None:
    client = own_redis.client()
    env = process_env(own_redis, fake_api, RELAY_SECRET_REFRESH_INTERVAL="0.1")
    workflow = org.workflow()
    done = org.finished(workflow, "processed", seconds_ago=90 * MINUTE)
    failed = org.finished(workflow, "error", seconds_ago=30 * MINUTE)
    org.ignored(workflow, "processed", seconds_ago=3 * 60 * MINUTE)

    dry = relay_reconcile(env, "--since", "2h", "--dry-run")
    assert client.keys("anyformat:events*") == []
    assert f"would write reconciled:{done}:processed extraction.completed" in dry
    assert f"would write reconciled:{failed}:error extraction.failed" in dry
    assert "would write 2 event(s), 0 already present" in dry

    wrote = relay_reconcile(env, "--since", "2h")
    assert f"wrote reconciled:{done}:processed" in wrote and "wrote 2 event(s)" in wrote
    assert {run: len(f) for run, f in by_extraction(client, STREAMS[0]).items()} == {
        done: 1, failed: 1}  # fmt: skip

    again = relay_reconcile(env, "--since", "2h")
    assert "wrote 0 event(s), 2 already present" in again
    assert client.xlen(STREAMS[0]) == 2


async def test_deliveries_refused_while_redis_was_down_are_recovered_by_the_periodic_sweep(
    start_relay: StartRelay,
    fake_api: FakeAnyFormat,
    org: Organisation,
    http: aiohttp.ClientSession,
) -> None:
    durable = RedisServer("--appendonly", "yes", "--appendfsync", "always")
    durable.start()
    try:
        client = durable.client()
        server = await start_relay(
            durable.url, **reconciling(fake_api, RELAY_RECONCILE_INTERVAL=3, RELAY_REDIS_TIMEOUT=1)
        )
        # Registered, and the relay holds the secret (the subscription exists a moment
        # before the relay has loaded its record: a delivery then is refused, no_secret).
        await wait_for(lambda: server.relay.secrets.keys, what="the registered secret loaded")
        secret = only_secret(fake_api)
        workflow = org.workflow()
        before = org.finished(workflow, "processed", seconds_ago=1, took=5)
        body = webhook_body(before, workflow, "processed")
        assert await deliver(http, public_url(server), secret, body) == (200, "accepted")

        durable.stop()
        refused = {org.finished(workflow, "processed", seconds_ago=0): "processed",
                   org.finished(workflow, "error", seconds_ago=0): "error"}  # fmt: skip
        for run, status in refused.items():
            body = webhook_body(run, workflow, status)
            assert await deliver(http, public_url(server), secret, body) == (503, "unavailable")
        durable.start()

        def recovered() -> bool:
            return set(by_extraction(client, STREAMS[0])) == set(org.expected)

        await wait_for(recovered, what="the refused deliveries recovered")
        everything = by_extraction(client, STREAMS[0])
        assert {run: len(found) for run, found in everything.items()} == {
            run: 1 for run in org.expected
        }
        assert "source" not in everything[before][0]
        assert all(everything[run][0]["source"] == "reconciled" for run in refused)
    finally:
        durable.close()
