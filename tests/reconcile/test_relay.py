"""Relays reconciling in the background: after a gap, once across replicas, never in the
way of a delivery, through 429s and API errors, and after Redis was down."""

from __future__ import annotations

import asyncio

import aiohttp
import redis

from tests.conftest import StartRelay
from tests.reconcile.conftest import Organisation
from tests.reconcile.relays import (
    STATE,
    by_extraction,
    deliver,
    metrics_with,
    only_secret,
    public_url,
    reconciling,
    set_heartbeat,
    webhook_body,
)
from tests.support.fake_anyformat import FakeAnyFormat
from tests.support.waiting import wait_for

HOUR = 3600.0
STREAMS = (
    "anyformat:events",
    "anyformat:events:extraction.completed",
    "anyformat:events:extraction.failed",
)


def assert_recovered_once(org: Organisation, client: redis.Redis) -> None:
    """Each expected event once in each routed stream, from reconciliation; nothing else."""
    everything = by_extraction(client, STREAMS[0])
    assert {run: [f["event"] for f in found] for run, found in everything.items()} == {
        run: [event] for run, event in org.expected.items()
    }
    for event, stream in zip(
        ("extraction.completed", "extraction.failed"), STREAMS[1:], strict=True
    ):
        assert set(by_extraction(client, stream)) == {
            run for run, e in org.expected.items() if e == event
        }


def workflow_walks(fake_api: FakeAnyFormat) -> int:
    return sum(1 for call in fake_api.v3_calls() if call.path == "/v3/workflows/")


async def test_a_relay_starting_after_a_5_hour_gap_recovers_what_finished_meanwhile(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    org: Organisation,
    http: aiohttp.ClientSession,
) -> None:
    set_heartbeat(redis_sync, 5 * HOUR)
    workflow = org.workflow()
    org.finished(workflow, "processed", seconds_ago=4 * HOUR)
    org.finished(workflow, "error", seconds_ago=40 * 60)
    org.finished(org.workflow(), "processed", seconds_ago=5 * HOUR + 200)  # in the margin
    org.ignored(workflow, "cancelled", seconds_ago=30 * 60)
    org.ignored(workflow, "in_progress", seconds_ago=30 * 60)
    org.ignored(workflow, "processed", seconds_ago=5 * HOUR + 400)  # before the window

    server = await start_relay(redis_url, **reconciling(fake_api))
    await wait_for(lambda: redis_sync.hget(STATE, "last_done"), what="the gap sweep")

    assert_recovered_once(org, redis_sync)
    assert not redis_sync.hexists(STATE, "gap_since")
    await metrics_with(
        http,
        server,
        'relay_reconciled_events_total{event="extraction.completed"} 2.0',
        'relay_reconciled_events_total{event="extraction.failed"} 1.0',
        'relay_reconcile_sweeps_total{outcome="ok"} 1.0',
        "relay_reconcile_last_success_timestamp_seconds 1.",
    )


async def test_a_restart_inside_the_threshold_does_not_sweep(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    org: Organisation,
) -> None:
    set_heartbeat(redis_sync, 20)
    redis_sync.hset(STATE, "epoch", 1)
    redis_sync.hset(STATE, "last_until", int(redis_sync.time()[0]) * 1000)
    org.finished(org.workflow(), "processed", seconds_ago=60)
    server = await start_relay(redis_url, **reconciling(fake_api))
    reconciler = server.reconciler
    assert reconciler is not None
    await wait_for(lambda: reconciler.checks >= 1, what="the first check")
    assert fake_api.v3_calls() == [] and redis_sync.xlen(STREAMS[0]) == 0


async def test_two_relays_starting_together_reconcile_once(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    org: Organisation,
) -> None:
    set_heartbeat(redis_sync, HOUR)
    workflow = org.workflow()
    for minutes in (10, 20, 30):
        org.finished(workflow, "processed", seconds_ago=minutes * 60)
    org.finished(workflow, "error", seconds_ago=15 * 60)

    servers = await asyncio.gather(
        start_relay(redis_url, **reconciling(fake_api)),
        start_relay(redis_url, **reconciling(fake_api)),
    )
    reconcilers = [server.reconciler for server in servers]
    await wait_for(lambda: redis_sync.hget(STATE, "last_done"), what="the gap sweep")
    await wait_for(
        lambda: all(r is not None and r.checks >= 1 for r in reconcilers),
        what="every relay's first check",
    )

    assert workflow_walks(fake_api) == 1
    assert_recovered_once(org, redis_sync)


async def test_a_slow_api_never_delays_a_delivery(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    org: Organisation,
    http: aiohttp.ClientSession,
) -> None:
    first = await start_relay(redis_url, **reconciling(fake_api))
    await wait_for(lambda: redis_sync.hget(STATE, "heartbeat"), what="a heartbeat")
    await first.stop()
    set_heartbeat(redis_sync, HOUR)
    workflow = org.workflow()
    org.finished(workflow, "processed", seconds_ago=60)
    fake_api.delay = 8  # every API answer now takes 8 s

    server = await start_relay(redis_url, **reconciling(fake_api))
    await wait_for(lambda: fake_api.v3_calls(), what="the sweep's first call")
    for run in ("live-1", "live-2", "live-3"):
        body = webhook_body(run, workflow, "processed")
        answer = await deliver(http, public_url(server), only_secret(fake_api), body)
        assert answer == (200, "accepted")
    assert [call.status for call in fake_api.v3_calls()] == [0]  # still unanswered
    fake_api.delay = 0


async def test_429_is_waited_out_and_an_api_failure_is_swept_again(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    org: Organisation,
    http: aiohttp.ClientSession,
    recorded_backoff: list[float],
) -> None:
    from relay.reconcile.api import ATTEMPTS

    set_heartbeat(redis_sync, HOUR)
    workflow = org.workflow()
    org.finished(workflow, "processed", seconds_ago=600)
    org.finished(workflow, "error", seconds_ago=700)
    fake_api.fail_v3_next(500, times=ATTEMPTS)  # the first sweep fails for good...
    fake_api.fail_v3_next(429, times=2, retry_after="3")  # ...the second is rate limited

    server = await start_relay(redis_url, **reconciling(fake_api, RELAY_RECONCILE_INTERVAL=8))
    await wait_for(lambda: redis_sync.hget(STATE, "last_done"), what="a successful sweep")

    assert_recovered_once(org, redis_sync)
    assert [s for s in (c.status for c in fake_api.v3_calls()) if s >= 400] == (
        [500] * ATTEMPTS + [429, 429]
    )
    assert recorded_backoff.count(3.0) == 2  # Retry-After, as the API said
    await metrics_with(
        http,
        server,
        'relay_reconcile_sweeps_total{outcome="failed"} 1.0',
        'relay_reconcile_sweeps_total{outcome="ok"} 1.0',
    )


async def test_a_lock_left_by_this_relay_is_its_own_but_another_relays_is_respected(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    org: Organisation,
) -> None:
    """Redis going away while a relay held the sweep lock leaves the key (persisted with the
    data): that relay sweeps again at once; a lock another relay holds is waited for."""
    from relay.reconcile.reconciler import Busy
    from relay.redis.keys import reconcile_lock_key

    server = await start_relay(redis_url, **reconciling(fake_api))
    reconciler = server.reconciler
    assert reconciler is not None
    await wait_for(lambda: reconciler.checks >= 1, what="the first check")
    key = reconcile_lock_key("anyformat")
    redis_sync.set(key, "another-relay", px=30_000)
    try:
        await reconciler.sweep_if_due()
    except Busy:
        pass
    else:
        raise AssertionError("swept under another relay's lock")
    assert redis_sync.get(key) == b"another-relay"
    redis_sync.set(key, reconciler._sweep_lock.token, px=30_000)  # ours, left behind
    await reconciler.sweep_if_due()  # not Busy
    assert redis_sync.get(key) is None  # taken again, then released
