"""Reconciliation on a real Redis Cluster: state, lock and fan-out across shards."""

from __future__ import annotations

import time

import aiohttp

from tests.conftest import StartRelay
from tests.reconcile.conftest import Organisation
from tests.reconcile.relays import (
    STATE,
    by_extraction,
    deliver,
    only_secret,
    public_url,
    reconciling,
    webhook_body,
)
from tests.support.fake_anyformat import FakeAnyFormat
from tests.support.redis_cluster import RedisCluster
from tests.support.waiting import wait_for

STREAMS = ("anyformat:events", "anyformat:events:extraction.completed",
           "anyformat:events:extraction.failed")  # fmt: skip


async def test_a_gap_is_reconciled_once_into_streams_on_different_shards(
    start_relay: StartRelay,
    cluster: RedisCluster,
    fake_api: FakeAnyFormat,
    org: Organisation,
    http: aiohttp.ClientSession,
) -> None:
    client = cluster.client()
    client.hset(STATE, "heartbeat", round((time.time() - 3600) * 1000))
    workflow = org.workflow()
    done = org.finished(workflow, "processed", seconds_ago=30 * 60)
    org.finished(workflow, "error", seconds_ago=20 * 60)
    org.ignored(workflow, "cancelled", seconds_ago=10 * 60)

    server = await start_relay(cluster.url, RELAY_REDIS_CLUSTER=True, **reconciling(fake_api))
    await wait_for(lambda: client.hget(STATE, "last_done"), what="the gap sweep")

    assert {run: len(f) for run, f in by_extraction(client, STREAMS[0]).items()} == {
        run: 1 for run in org.expected
    }
    for event, stream in (("extraction.completed", STREAMS[1]), ("extraction.failed", STREAMS[2])):
        assert set(by_extraction(client, stream)) == {
            run for run, e in org.expected.items() if e == event
        }
    body = webhook_body(done, workflow, "processed")
    secret = only_secret(fake_api)
    assert await deliver(http, public_url(server), secret, body) == (200, "duplicate")
