"""GET /api/streams, /api/registration and /api/reconciliation on a real relay: the numbers
are what Redis says, no secret is ever in them."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
import redis

from relay.receiver.app import RelayServer
from relay.reconcile.state import SharedState
from tests.conftest import StartRelay
from tests.operator.conftest import TOKEN
from tests.reconcile.conftest import Organisation, org  # noqa: F401 (fixtures)
from tests.reconcile.relays import set_heartbeat
from tests.support.entry_schemas import dead_letter_fields, relay_fields
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.registering import PUBLIC_URL, only_secret, registering
from tests.support.signing import SECRET
from tests.support.waiting import wait_for

BEARER = {"Authorization": f"Bearer {TOKEN}"}
STREAM = "anyformat:events"


async def get(
    cookieless_http: aiohttp.ClientSession, server: RelayServer, path: str
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.admin_port}{path}"
    async with cookieless_http.get(url, headers=BEARER) as response:
        assert response.status == 200, await response.text()
        document: dict[str, Any] = await response.json()
        return document


def fill(client: redis.Redis) -> list[bytes]:
    """Five entries; group "billing": three delivered to two consumers, one acknowledged;
    group "audit": nothing read; two dead letters."""
    ids = [client.xadd(STREAM, relay_fields(n)) for n in range(5)]
    client.xgroup_create(STREAM, "billing", id="0")
    client.xgroup_create(STREAM, "audit", id="0")
    client.xreadgroup("billing", "worker-a", {STREAM: ">"}, count=2)
    client.xreadgroup("billing", "worker-b", {STREAM: ">"}, count=1)
    client.xack(STREAM, "billing", ids[0])
    client.xadd(f"{STREAM}:dlq", dead_letter_fields(1, original_id=ids[1].decode()))
    client.xadd(f"{STREAM}:dlq", dead_letter_fields(2, original_id=ids[2].decode()))
    return ids


async def test_streams_show_what_redis_says(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    cookieless_http: aiohttp.ClientSession,
) -> None:
    ids = fill(redis_sync)
    server = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)
    document = await get(cookieless_http, server, "/api/streams")
    by_name = {row["stream"]: row for row in document["streams"]}
    assert set(by_name) == set(server.relay.streams())
    row = by_name[STREAM]
    assert row["length"] == redis_sync.xlen(STREAM) == 5
    assert (row["first_id"], row["last_id"]) == (ids[0].decode(), ids[-1].decode())
    assert row["dlq_length"] == redis_sync.xlen(f"{STREAM}:dlq") == 2
    groups = {group["name"]: group for group in row["groups"]}
    for info in redis_sync.xinfo_groups(STREAM):
        group = groups[info["name"].decode()]
        assert group["pending"] == info["pending"]
        assert group["lag"] == info["lag"]
        assert group["paused"] is False
        consumers = {c["name"].decode(): c["pending"] for c in
                     redis_sync.xinfo_consumers(STREAM, info["name"])}  # fmt: skip
        assert {c["name"]: c["pending"] for c in group["consumers"]} == consumers
    billing, audit = groups["billing"], groups["audit"]
    assert (billing["pending"], billing["lag"], audit["pending"], audit["lag"]) == (2, 2, 0, 5)
    [oldest] = redis_sync.xpending_range(STREAM, "billing", "-", "+", 1)
    now_ms = int(redis_sync.time()[0]) * 1000
    age = billing["oldest_pending_seconds"]
    assert 0 <= age <= (now_ms + 1000 - int(oldest["message_id"].split(b"-")[0])) / 1000
    assert audit["oldest_pending_seconds"] == 0
    empty = by_name["anyformat:events:extraction.failed"]
    assert (empty["length"], empty["first_id"], empty["last_id"], empty["groups"]) == (
        0, None, None, [],
    )  # fmt: skip


async def test_streams_are_503_while_redis_is_away(
    start_relay: StartRelay, cookieless_http: aiohttp.ClientSession
) -> None:
    from tests.support.redis_server import free_port

    server = await start_relay(f"redis://127.0.0.1:{free_port()}/0", RELAY_ADMIN_TOKEN=TOKEN)
    url = f"http://127.0.0.1:{server.admin_port}/api/streams"
    async with cookieless_http.get(url, headers=BEARER) as response:
        assert response.status == 503
        assert await response.json() == {"error": "redis_unavailable"}


async def test_registration_off_shows_the_static_secrets_fingerprints_only(
    start_relay: StartRelay, redis_url: str, cookieless_http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)
    document = await get(cookieless_http, server, "/api/registration")
    assert document["state"] == "off" and document["webhook_id"] is None
    assert document["secret_fingerprints"] == [
        "sha256:" + hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    ]
    assert SECRET not in str(document) and SECRET.removeprefix("whsec_") not in str(document)


async def test_registration_shows_the_subscription_and_never_its_secret(
    start_relay: StartRelay,
    redis_url: str,
    fake_api: FakeAnyFormat,
    cookieless_http: aiohttp.ClientSession,
) -> None:
    server = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN, **registering(fake_api))
    await wait_for(lambda: server.relay.registration.state == "registered", what="registered")
    document = await get(cookieless_http, server, "/api/registration")
    [webhook] = fake_api.for_url(PUBLIC_URL)
    secret = only_secret(fake_api)
    assert (document["webhook_id"], document["url"]) == (webhook["id"], PUBLIC_URL)
    assert document["state"] == "registered" and document["last_api_error"] is None
    assert document["last_checked"].endswith("Z")
    assert document["secret_fingerprints"] == [
        "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]
    ]
    text = str(document)
    assert secret not in text and secret.removeprefix("whsec_") not in text
    assert API_KEY not in text


async def test_a_rejected_api_key_shows_as_the_state_and_the_last_error(
    start_relay: StartRelay,
    redis_url: str,
    fake_api: FakeAnyFormat,
    cookieless_http: aiohttp.ClientSession,
) -> None:
    first = await start_relay(redis_url, **registering(fake_api))
    await wait_for(lambda: first.relay.registration.state == "registered", what="registered")
    await first.stop()
    fake_api.fail_next(401, times=1000)  # the key revoked: it serves on with the stored secret
    server = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN, **registering(fake_api))
    await wait_for(
        lambda: server.relay.registration.state == "api_key_rejected", what="the key rejected"
    )
    document = await get(cookieless_http, server, "/api/registration")
    assert document["state"] == "api_key_rejected"
    assert "rejected ANYFORMAT_API_KEY" in document["last_api_error"]
    assert API_KEY not in str(document)


async def test_reconciliation_shows_the_last_sweep_from_any_relay(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    org: Organisation,  # noqa: F811
    cookieless_http: aiohttp.ClientSession,
) -> None:
    set_heartbeat(redis_sync, 2 * 3600)
    workflow = org.workflow()
    org.finished(workflow, "processed", seconds_ago=3600)
    org.finished(workflow, "error", seconds_ago=1800)
    sweeping = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN, **registering(fake_api))
    await wait_for(lambda: redis_sync.exists("anyformat:reconcile:last_sweep"), what="a sweep")
    # Another replica, not the one that swept, reports it alike.
    other = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN, RELAY_ADMIN_PORT=0)
    for server in (sweeping, other):
        document = await get(cookieless_http, server, "/api/reconciliation")
        last = document["last_sweep"]
        assert (last["outcome"], last["reason"], last["events_written"]) == ("ok", "gap", 2)
        assert last["runs_seen"] >= 2
        assert last["started"] <= last["finished"]
        assert last["window"]["since"] < last["window"]["until"]
        assert document["last_error"] is None and document["gap_since"] is None
    assert (await get(cookieless_http, sweeping, "/api/reconciliation"))["next_sweep"].endswith("Z")
    assert (await get(cookieless_http, other, "/api/reconciliation"))["enabled"] is False


async def test_a_failed_sweep_is_the_last_error(
    client: redis.asyncio.Redis, start_relay: StartRelay, redis_url: str,
    cookieless_http: aiohttp.ClientSession,
) -> None:  # fmt: skip
    await SharedState(client, "anyformat").record_sweep(
        {"reason": "periodic", "started_at": 1.0, "finished_at": 2.0, "since": 0.0,
         "until": 1.0, "outcome": "failed", "error": "AnyFormat answered 503",
         "runs_seen": None, "events_written": None}
    )  # fmt: skip
    server = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)
    document = await get(cookieless_http, server, "/api/reconciliation")
    assert document["last_error"] == "AnyFormat answered 503"
    assert document["last_sweep"]["started"] == "1970-01-01T00:00:01.000Z"
    assert document["next_sweep"] is None  # this relay does not reconcile
