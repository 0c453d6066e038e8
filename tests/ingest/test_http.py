"""Every row of the contract's HTTP table, over real sockets, against the app `relay run` builds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import redis
from prometheus_client import generate_latest

from relay.receiver.app import RelayServer
from relay.redis.keys import registration_key
from relay.registration.record import RegistrationRecord
from tests.conftest import StartRelay
from tests.support.http import concurrent_copies, relay_metrics
from tests.support.signing import OTHER_SECRET, SECRET, event_body, sign
from tests.support.waiting import wait_for

PATH = "/webhooks/anyformat"


def url(server: RelayServer, path: str = PATH) -> str:
    return f"http://127.0.0.1:{server.public_port}{path}"


def admin(server: RelayServer, path: str) -> str:
    return f"http://127.0.0.1:{server.admin_port}{path}"


async def post(
    http: aiohttp.ClientSession, server: RelayServer, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str]]:
    async with http.post(url(server), data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def entries(redis_sync: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in redis_sync.xrange(stream)]


async def test_a_first_delivery_is_accepted_and_written_to_every_routed_stream(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url)
    body = event_body(extraction_id="ex-1")
    status, answer = await post(http, server, body, sign(body, msg_id="msg_1"))
    assert (status, answer) == (200, {"status": "accepted", "id": "msg_1"})
    for stream in ("anyformat:events", "anyformat:events:extraction.completed"):
        [fields] = entries(redis_sync, stream)
        assert fields[b"payload"] == body
        assert fields[b"id"] == b"msg_1"
        assert fields[b"extraction_id"] == b"ex-1"


async def test_a_redelivery_is_a_duplicate_and_writes_nothing(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url)
    body = event_body()
    for attempt in range(3):
        # Re-deliveries carry the same id, possibly a new timestamp and signature.
        status, answer = await post(http, server, body, sign(body, msg_id="msg_1"))
        assert status == 200
        assert answer["status"] == ("accepted" if attempt == 0 else "duplicate")
    assert len(entries(redis_sync, "anyformat:events")) == 1


async def test_the_same_event_under_another_id_is_a_duplicate_with_no_rotation_on(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    """Content marks are always on: a copy from another subscription (or a reconciled twin)
    is answered duplicate whatever this replica believes about rotations."""
    server = await start_relay(redis_url)
    first = event_body(extraction_id="ex-1")
    twin = event_body(extraction_id="ex-1", note="a different body, the same event")
    status, answer = await post(http, server, first, sign(first, msg_id="msg_a"))
    assert (status, answer["status"]) == (200, "accepted")
    status, answer = await post(http, server, twin, sign(twin, msg_id="msg_b"))
    assert (status, answer) == (200, {"status": "duplicate", "id": "msg_b"})
    failed = event_body("extraction.failed", extraction_id="ex-1")
    status, answer = await post(http, server, failed, sign(failed, msg_id="msg_c"))
    assert (status, answer["status"]) == (200, "accepted")
    assert [f[b"id"] for f in entries(redis_sync, "anyformat:events")] == [b"msg_a", b"msg_c"]
    assert len(entries(redis_sync, "anyformat:events:extraction.completed")) == 1


async def test_fifty_concurrent_copies_of_one_delivery_make_one_entry_per_stream(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url)
    body = event_body()
    headers = sign(body, msg_id="msg_race")
    statuses = await concurrent_copies(http, url(server), body, headers, 50)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert len(entries(redis_sync, "anyformat:events")) == 1
    assert len(entries(redis_sync, "anyformat:events:extraction.completed")) == 1


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: {}, "missing_signature"),
        (lambda h: {**h, "webhook-signature": "v1,AAAA"}, "invalid_signature"),
        (lambda h: {**h, "webhook-signature": "v1,%%%"}, "malformed_signature"),
        (lambda h: {**h, "webhook-timestamp": "yesterday"}, "malformed_headers"),
        (lambda h: {**h, "webhook-timestamp": "1000000000"}, "timestamp_out_of_tolerance"),
        (lambda h: sign(event_body(), secret=OTHER_SECRET), "invalid_signature"),
    ],
)
async def test_forged_or_stale_deliveries_are_401_and_write_nothing(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    http: aiohttp.ClientSession,
    mutate,  # type: ignore[no-untyped-def]
    reason: str,
) -> None:
    server = await start_relay(redis_url)
    body = event_body()
    status, answer = await post(http, server, body, mutate(sign(body)))
    assert (status, answer["reason"]) == (401, reason)
    assert redis_sync.keys("*") == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe\xfd",
        b"[]",
        b'{"data": {}}',
        b'{"event": "x", "data": "nope"}',
    ],
)
async def test_signed_but_unroutable_bodies_are_400_and_write_nothing(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    http: aiohttp.ClientSession,
    body: bytes,
) -> None:
    server = await start_relay(redis_url)
    status, answer = await post(http, server, body, sign(body))
    assert (status, answer["reason"]) == (400, "invalid_body")
    assert answer["detail"]
    assert redis_sync.keys("*") == []


async def test_wrong_method_and_wrong_path(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url)
    async with http.get(url(server)) as response:
        assert response.status == 405
    async with http.post(url(server, "/other"), data=b"{}") as response:
        assert response.status == 404
    for path in ("/healthz", "/readyz", "/metrics"):
        async with http.get(url(server, path)) as response:
            assert response.status == 404, path


async def raw_exchange(port: int, request: bytes, then: bytes = b"") -> bytes:
    """Send bytes on a raw connection and read the answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    if then:
        try:
            writer.write(then)
            await writer.drain()
        except ConnectionError:
            pass
    try:
        answer = await asyncio.wait_for(reader.read(65536), timeout=5)
    finally:
        writer.close()
    return answer


async def test_a_body_over_the_limit_with_content_length_is_413_before_reading_it(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis
) -> None:
    server = await start_relay(redis_url, RELAY_MAX_BODY_BYTES=1000)
    body = b"x" * 1001
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in sign(body).items())
        + "\r\n"
    ).encode()
    # Only the headers are sent: the answer must come without the body ever arriving.
    answer = await raw_exchange(server.public_port, head)
    assert answer.startswith(b"HTTP/1.1 413")
    assert redis_sync.keys("*") == []


async def test_a_chunked_body_over_the_limit_is_413_and_read_no_further(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis
) -> None:
    server = await start_relay(redis_url, RELAY_MAX_BODY_BYTES=1000)
    head = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    first = b"3e9\r\n" + b"x" * 1001 + b"\r\n"  # 1001 bytes: one past the limit
    answer = await raw_exchange(server.public_port, head + first)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in answer or b"connection: close" in answer.lower()
    assert redis_sync.keys("*") == []


async def test_a_body_of_exactly_the_limit_is_read(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    body = event_body()
    server = await start_relay(redis_url, RELAY_MAX_BODY_BYTES=len(body))
    status, _ = await post(http, server, body, sign(body))
    assert status == 200


async def test_no_secret_loaded_is_503_with_retry_after(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(
        redis_url, RELAY_WEBHOOK_SECRET=None, RELAY_PUBLIC_URL="https://relay.example.com/hook"
    )
    body = event_body()
    async with http.post(url(server, "/hook"), data=body, headers=sign(body)) as response:
        assert response.status == 503
        assert response.headers["Retry-After"].isdigit()
    async with http.get(admin(server, "/readyz")) as response:
        assert response.status == 503


async def test_the_secret_of_the_registration_record_is_used_and_refreshed(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    public_url = "https://relay.example.com/hook"
    key = registration_key("anyformat", public_url)

    def store(secret: str, retiring: list[dict[str, str]]) -> None:
        record = {
            "id": "wh_1",
            "url": public_url,
            "events": ["extraction.completed"],
            "secret": secret,
            "created_at": "2024-03-24T12:00:00Z",
            "retiring": retiring,
        }
        RegistrationRecord.model_validate(record)  # the layout the code reads
        redis_sync.set(key, json.dumps(record))

    store(SECRET, [])
    server = await start_relay(
        redis_url,
        RELAY_WEBHOOK_SECRET=None,
        RELAY_PUBLIC_URL=public_url,
        RELAY_SECRET_REFRESH_INTERVAL=0.1,
    )
    body = event_body()
    async with http.post(url(server, "/hook"), data=body, headers=sign(body)) as response:
        assert response.status == 200

    # A rotation: the new secret is current, the old one still accepted while it retires.
    store(OTHER_SECRET, [{"id": "wh_0", "secret": SECRET}])
    keys = server.relay.secrets
    await wait_for(lambda: len(keys.keys) == 2, what="the rotated record re-read")
    for secret in (OTHER_SECRET, SECRET):
        body = event_body()
        headers = sign(body, secret=secret)
        async with http.post(url(server, "/hook"), data=body, headers=headers) as response:
            assert response.status == 200, secret

    store(OTHER_SECRET, [])
    await wait_for(lambda: len(keys.keys) == 1, what="the retired secret dropped")
    body = event_body()
    async with http.post(url(server, "/hook"), data=body, headers=sign(body)) as response:
        assert response.status == 401


async def test_routes_file_and_unrouted(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n"
        "  - event: extraction.completed\n    streams: [billing:extractions]\n"
        "  - event: '*'\n    workflow_id: wf-1\n    streams: ['{team}:events']\n"
    )
    server = await start_relay(redis_url, RELAY_ROUTES_FILE=str(routes))
    for event, workflow in [
        ("extraction.completed", "wf-1"),
        ("extraction.failed", "wf-1"),
        ("extraction.failed", "wf-2"),
    ]:
        body = event_body(event, workflow_id=workflow)
        status, _ = await post(http, server, body, sign(body))
        assert status == 200
    assert len(entries(redis_sync, "billing:extractions")) == 1
    assert len(entries(redis_sync, "{team}:events")) == 2
    [unrouted] = entries(redis_sync, "anyformat:unrouted")
    assert b"wf-2" in unrouted[b"payload"]


async def test_hmac_scheme_end_to_end(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    import hashlib
    import hmac

    server = await start_relay(
        redis_url,
        RELAY_SIGNATURE_SCHEME="hmac-sha256",
        RELAY_WEBHOOK_SECRET="shared",
        RELAY_HMAC_HEADER="X-Hub-Signature-256",
    )
    body = event_body()
    signature = "sha256=" + hmac.new(b"shared", body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature}
    first = await post(http, server, body, headers)
    second = await post(http, server, body, headers)
    assert (first[0], first[1]["status"], second[1]["status"]) == (200, "accepted", "duplicate")
    assert first[1]["id"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert len(entries(redis_sync, "anyformat:events")) == 1


async def test_admin_endpoints(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url)
    body = event_body()
    await post(http, server, body, sign(body))
    await post(http, server, body, sign(body, msg_id="x", secret=OTHER_SECRET))
    async with http.get(admin(server, "/healthz")) as response:
        assert response.status == 200
    async with http.get(admin(server, "/readyz")) as response:
        assert (response.status, (await response.json())["status"]) == (200, "ready")
    text = await relay_metrics(http, server)
    assert "relay_deliveries_received_total 2.0" in text
    assert "relay_deliveries_accepted_total 1.0" in text
    assert 'relay_deliveries_rejected_total{reason="invalid_signature"} 1.0' in text
    assert 'relay_request_duration_seconds_count{status="200"} 1.0' in text
    async with http.post(admin(server, PATH), data=body, headers=sign(body)) as response:
        assert response.status == 404  # deliveries are never served on the admin port


async def test_a_body_cut_short_is_400_and_writes_nothing(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis
) -> None:
    server = await start_relay(redis_url)
    body = event_body()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in sign(body).items())
        + "\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
    writer.write(head + body[:20])
    await writer.drain()
    writer.write_eof()  # the sender gives up half-way
    answer = await asyncio.wait_for(reader.read(65536), timeout=5)
    writer.close()
    # aiohttp may close a half-closed connection before any answer; either way the
    # delivery is refused as incomplete, not taken for an internal error.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
    expected = 'relay_deliveries_rejected_total{reason="incomplete_body"} 1.0'

    def counted() -> str | None:  # the handler may finish just after the connection closed
        text = generate_latest(server.relay.metrics.registry).decode()
        return text if expected in text else None

    metrics = await wait_for(counted, what="the incomplete body counted")
    assert "internal_error" not in metrics
    assert redis_sync.keys("*") == []
