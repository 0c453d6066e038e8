"""The operator API's events, dead-letter, job and pause endpoints on a real relay (its
admin port, over real sockets) and a real redis-server: each rule both ways."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import redis
import structlog
from redis.asyncio import Redis

from relay.operator.deadletters import Filter, Selection
from relay.operator.jobs import submit
from relay.receiver.app import RelayServer
from relay.redis.keys import job_lock_key as lock_key
from relay.redis.keys import pause_key
from relay.worker.deadletter import dead_letter, dlq_stream
from tests.conftest import StartRelay
from tests.operator.conftest import TOKEN
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for

STREAM = "anyformat:events"
ENCODED = quote(STREAM, safe="")
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# Every endpoint of this module, with a request the token check sees first.
ENDPOINTS = [
    ("GET", "/api/events/msg_1", None),
    ("GET", "/api/events?extraction_id=ex-1", None),
    ("GET", f"/api/streams/{ENCODED}/dead-letters", None),
    ("POST", f"/api/streams/{ENCODED}/dead-letters/replay", {"ids": [], "dry_run": True}),
    ("POST", f"/api/streams/{ENCODED}/dead-letters/purge", {"ids": [], "dry_run": True}),
    ("GET", "/api/jobs/nope", None),
    ("POST", "/api/jobs/nope/cancel", None),
    ("POST", f"/api/streams/{ENCODED}/groups/billing/pause", None),
    ("POST", f"/api/streams/{ENCODED}/groups/billing/resume", None),
]


@pytest.fixture
async def relay(start_relay: StartRelay, redis_url: str) -> RelayServer:
    return await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)


async def call(
    http: aiohttp.ClientSession, relay: RelayServer, method: str, path: str,
    body: Any = None, headers: dict[str, str] | None = None,
) -> tuple[int, Any]:  # fmt: skip
    url = f"http://127.0.0.1:{relay.admin_port}{path}"
    sent = AUTH if headers is None else headers
    async with http.request(method, url, json=body, headers=sent) as response:
        return response.status, await response.json(content_type=None)


async def deliver(http: aiohttp.ClientSession, relay: RelayServer, msg_id: str, ex: str) -> None:
    body = event_body(extraction_id=ex)
    url = f"http://127.0.0.1:{relay.public_port}/webhooks/anyformat"
    async with http.post(url, data=body, headers=sign(body, msg_id=msg_id)) as response:
        assert response.status == 200


async def dead_letters(redis_url: str, count: int) -> list[str]:
    """``count`` entries of STREAM, read by group billing and moved to the DLQ as a worker
    does; their DLQ entry ids."""
    client = Redis.from_url(redis_url)
    try:
        await client.xgroup_create(STREAM, "billing", id="0", mkstream=True)
        reply: Any = await client.xreadgroup("billing", "c", {STREAM: ">"}, count=count)
        for entry_id, fields in reply[0][1]:
            decoded = {k.decode(): v for k, v in fields.items()}
            await dead_letter(client, STREAM, "billing", entry_id.decode(), decoded,
                              error="RuntimeError: boom", attempts=5)  # fmt: skip
        return [i.decode() for i, _ in await client.xrange(dlq_stream(STREAM))]
    finally:
        await client.aclose()


async def finished(http: aiohttp.ClientSession, relay: RelayServer, job: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        status, document = await call(http, relay, "GET", f"/api/jobs/{job}")
        assert status == 200
        return None if document["state"] == "running" else dict(document)

    result: dict[str, Any] = await wait_for(ended, what=f"job {job} ended")
    return result


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_each_endpoint_wants_the_token_and_takes_the_right_one(
    relay: RelayServer, http: aiohttp.ClientSession, method: str, path: str, body: Any
) -> None:
    for wrong in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
        status, document = await call(http, relay, method, path, body, headers=wrong)
        assert (status, document) == (401, {"error": "unauthorized"})
    status, _ = await call(http, relay, method, path, body)
    assert status in (200, 404)  # answered (404: no such event or job)


async def test_a_cross_site_post_is_refused_and_changes_nothing(
    relay: RelayServer, http: aiohttp.ClientSession, redis_sync: redis.Redis
) -> None:
    path = f"/api/streams/{ENCODED}/groups/billing/pause"
    status, _ = await call(
        http, relay, "POST", path, headers={**AUTH, "Sec-Fetch-Site": "cross-site"}
    )
    assert status == 403 and not redis_sync.exists(pause_key(STREAM))
    status, _ = await call(
        http, relay, "POST", path, headers={**AUTH, "Sec-Fetch-Site": "same-origin"}
    )
    assert status == 200 and redis_sync.hexists(pause_key(STREAM), "billing")


async def test_an_event_is_found_by_id_and_by_extraction_id(
    relay: RelayServer, http: aiohttp.ClientSession
) -> None:
    await deliver(http, relay, "msg_1", "ex-1")
    await deliver(http, relay, "msg_1", "ex-1")  # a re-delivery
    status, trail = await call(http, relay, "GET", "/api/events/msg_1")
    assert status == 200
    assert (trail["id"], trail["extraction_id"], trail["duplicates"]) == ("msg_1", "ex-1", 1)
    assert [s["stream"] for s in trail["streams"]] == [
        STREAM,
        "anyformat:events:extraction.completed",
    ]
    assert await call(http, relay, "GET", "/api/events/msg_2") == (
        404, {"error": "not_found", "id": "msg_2"}
    )  # fmt: skip
    status, found = await call(http, relay, "GET", "/api/events?extraction_id=ex-1")
    assert status == 200 and [e["id"] for e in found["events"]] == ["msg_1"]
    status, refused = await call(http, relay, "GET", "/api/events")
    assert (status, refused["error"]) == (400, "bad_request")


async def test_dead_letters_are_listed_counted_and_replayed_once(
    relay: RelayServer, http: aiohttp.ClientSession, redis_url: str, redis_sync: redis.Redis
) -> None:
    for n in range(12):
        await deliver(http, relay, f"msg_{n}", f"ex-{n}")
    dlq_ids = await dead_letters(redis_url, 12)
    base = f"/api/streams/{ENCODED}/dead-letters"

    status, page = await call(http, relay, "GET", f"{base}?group=billing&limit=5")
    assert status == 200 and [d["entry_id"] for d in page["dead_letters"]] == dlq_ids[::-1][:5]
    assert page["next"] == dlq_ids[-5]
    status, rest = await call(http, relay, "GET", f"{base}?group=billing&after={page['next']}")
    assert [d["entry_id"] for d in rest["dead_letters"]] == dlq_ids[::-1][5:]
    status, none = await call(http, relay, "GET", f"{base}?group=audit")
    assert none == {"dead_letters": [], "next": None}
    assert (await call(http, relay, "GET", f"{base}?since=yesterday"))[0] == 400

    selection = {"filter": {"group": "billing", "error": "boom"}}
    status, preview = await call(
        http, relay, "POST", f"{base}/replay", {**selection, "dry_run": True}
    )
    assert (status, preview) == (200, {"matched": 12, "sample": dlq_ids[:10]})
    assert redis_sync.xlen(dlq_stream(STREAM)) == 12  # a dry run changes nothing

    with structlog.testing.capture_logs() as logs:
        status, started = await call(http, relay, "POST", f"{base}/replay", selection)
        assert status == 202
        job = await finished(http, relay, started["job"])
    assert (job["state"], job["total"], job["done"], job["skipped"]) == ("done", 12, 12, 0)
    [audit] = [line for line in logs if line["event"] == "audit"]
    assert audit["action"] == "replay" and audit["stream"] == STREAM
    assert (audit["group"], audit["count"], audit["remote"]) == ("billing", 12, "127.0.0.1")
    # Each entry once more on the stream (12 first entries + 12 replays), none twice.
    ids = Counter(f[b"id"] for _, f in redis_sync.xrange(STREAM))
    assert len(ids) == 12 and set(ids.values()) == {2}

    status, again = await call(http, relay, "POST", f"{base}/replay", selection)
    job = await finished(http, relay, again["job"])
    assert (job["total"], job["done"]) == (0, 0)  # submitted twice: acted on once
    assert redis_sync.xlen(STREAM) == 24


async def test_one_job_per_stream_and_a_selection_is_checked(
    relay: RelayServer, http: aiohttp.ClientSession, redis_url: str, redis_sync: redis.Redis
) -> None:
    await deliver(http, relay, "msg_1", "ex-1")
    [dlq_id] = await dead_letters(redis_url, 1)
    base = f"/api/streams/{ENCODED}/dead-letters"
    redis_sync.set(lock_key(STREAM), "elsewhere", px=30_000)
    assert await call(http, relay, "POST", f"{base}/purge", {"ids": [dlq_id]}) == (
        409, {"error": "job_running", "job": "elsewhere"}
    )  # fmt: skip
    redis_sync.delete(lock_key(STREAM))
    for bad in ({}, {"ids": ["garbage"]}, {"filter": {"colour": "red"}}, [1, 2]):
        status, document = await call(http, relay, "POST", f"{base}/purge", bad)
        assert (status, document["error"]) == (400, "bad_request"), bad
    status, started = await call(http, relay, "POST", f"{base}/purge", {"ids": [dlq_id]})
    assert status == 202
    assert (await finished(http, relay, started["job"]))["done"] == 1
    assert redis_sync.xlen(dlq_stream(STREAM)) == 0
    unknown = quote("not:a:routed:stream", safe="")
    status, document = await call(http, relay, "POST", f"/api/streams/{unknown}/dead-letters/purge",
                                  {"ids": [dlq_id]})  # fmt: skip
    assert (status, document["error"]) == (404, "unknown_stream")


async def test_any_relay_reports_and_cancels_a_job(
    relay: RelayServer, http: aiohttp.ClientSession, redis_url: str
) -> None:
    """A job another relay runs (here: submitted, its runner not started yet) is reported
    and cancelled through this one: jobs live in Redis."""
    await deliver(http, relay, "msg_1", "ex-1")
    await dead_letters(redis_url, 1)
    assert (await call(http, relay, "POST", "/api/jobs/nope/cancel"))[0] == 404
    client = Redis.from_url(redis_url)
    try:
        job = await submit(client, STREAM, "purge", Selection(filter=Filter()))
        status, document = await call(http, relay, "GET", f"/api/jobs/{job.id}")
        assert (status, document["state"], document["total"]) == (200, "running", 1)
        status, document = await call(http, relay, "POST", f"/api/jobs/{job.id}/cancel")
        assert (status, document["state"]) == (200, "cancelled")
        assert await job.run() == "cancelled"  # its runner stops at once
        assert await client.xlen(dlq_stream(STREAM)) == 1
    finally:
        await client.aclose()


async def test_pause_and_resume_a_group(
    relay: RelayServer, http: aiohttp.ClientSession, redis_sync: redis.Redis
) -> None:
    path = f"/api/streams/{ENCODED}/groups/billing"
    with structlog.testing.capture_logs() as logs:
        status, document = await call(http, relay, "POST", f"{path}/pause")
        assert (status, document["paused"], document["changed"]) == (200, True, True)
        assert redis_sync.hexists(pause_key(STREAM), "billing")
        status, document = await call(http, relay, "POST", f"{path}/resume")
        assert (status, document["paused"]) == (200, False)
    assert not redis_sync.exists(pause_key(STREAM))
    audits = [
        (line["action"], line["group"], line["remote"]) for line in logs if line["event"] == "audit"
    ]
    assert audits == [("pause", "billing", "127.0.0.1"), ("resume", "billing", "127.0.0.1")]
    unknown = quote("somewhere:else", safe="")
    status, _ = await call(http, relay, "POST", f"/api/streams/{unknown}/groups/billing/pause")
    assert status == 404
