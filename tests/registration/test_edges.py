"""Registration and rotation at their edges, with real `relay` processes, real Redis and the
fake API: never a duplicate, never down while the relay could serve."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import aiohttp
import pytest
import redis
from pydantic import SecretStr
from redis.asyncio import Redis

from relay.redis.keys import registration_key
from relay.registration.client import AnyFormatClient
from relay.registration.record import load_record, save_record
from relay.registration.registrar import Registrar
from tests.registration.conftest import EVENTS, PUBLIC_URL
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for

pytestmark = pytest.mark.process

PATH = "/webhooks/anyformat"
STREAMS = ("anyformat:events", "anyformat:events:extraction.completed")
LOCK_KEY = registration_key("anyformat", PUBLIC_URL) + ":lock"


def relay(
    processes: list[RelayProcess], server: RedisServer, fake_api: FakeAnyFormat, **extra: str
) -> RelayProcess:
    env = {
        "RELAY_REDIS_URL": server.url,
        "ANYFORMAT_API_KEY": API_KEY,
        "ANYFORMAT_BASE_URL": fake_api.url,
        "RELAY_PUBLIC_URL": PUBLIC_URL,
        "RELAY_SECRET_REFRESH_INTERVAL": "0.1",
        **extra,
    }
    process = RelayProcess(env)
    processes.append(process)
    return process


async def deliver(
    http: aiohttp.ClientSession, process: RelayProcess, body: bytes, secret: str, msg_id: str
) -> tuple[int, str]:
    headers = sign(body, secret=secret, msg_id=msg_id)
    async with http.post(f"{process.url}{PATH}", data=body, headers=headers) as response:
        document = await response.json(content_type=None)
        return response.status, str(document.get("status", ""))


def entries_per_event(client: redis.Redis, stream: str) -> Counter[bytes]:
    return Counter(fields[b"extraction_id"] for _, fields in client.xrange(stream))


def only_secret(fake_api: FakeAnyFormat) -> str:
    [webhook] = fake_api.for_url(PUBLIC_URL)
    return fake_api.secrets[webhook["id"]]


async def status_of(http: aiohttp.ClientSession, process: RelayProcess, path: str) -> int:
    try:
        async with http.get(f"http://127.0.0.1:{process.admin_port}{path}") as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return 0


# --- rotation ------------------------------------------------------------------------------


async def test_rotation_copies_at_both_edges_make_one_entry_per_stream(
    own_redis: RedisServer, fake_api: FakeAnyFormat, processes: list[RelayProcess]
) -> None:
    """Replica A follows the record (refresh 0.1 s); replica B never refreshes after its
    start, so it has not seen the rotation. AnyFormat sends each event to both
    subscriptions under different ids, and retries."""
    a = relay(processes, own_redis, fake_api)
    a.start()
    old = only_secret(fake_api)
    b = relay(processes, own_redis, fake_api, RELAY_REGISTER="false",
              RELAY_SECRET_REFRESH_INTERVAL="3600")  # fmt: skip
    b.start()

    client = Redis.from_url(own_redis.url)
    async with AnyFormatClient(fake_api.url, SecretStr(API_KEY)) as api:
        registrar = Registrar(client, api, prefix="anyformat", public_url=PUBLIC_URL, events=EVENTS)
        new_record, old_id = await registrar.rotate(grace=600)
        new = new_record.secret.get_secret_value()

        async with aiohttp.ClientSession() as http:

            async def a_accepts(secret: str) -> bool:
                probe = event_body("extraction.failed")  # its own event, its own streams
                status, _ = await deliver(http, a, probe, secret, f"probe-{time.monotonic()}")
                return status == 200

            await wait_for(lambda: a_accepts(new), what="A accepts the new secret", within=30)

            # Edge 1: the old subscription's copy reaches B before B has seen the rotation.
            one = event_body(extraction_id="ex-edge-1")
            assert await deliver(http, b, one, new, "msg_new_1") == (401, "rejected")  # stale
            assert await deliver(http, b, one, old, "msg_old_1") == (200, "accepted")
            assert await deliver(http, a, one, new, "msg_new_1") == (200, "duplicate")

            # A second event, whose copies straddle the end of the rotation.
            two = event_body(extraction_id="ex-edge-2")
            assert await deliver(http, a, two, old, "msg_old_2") == (200, "accepted")

            # The grace period ends now: the old subscription is deleted, the record drops it.
            record = await load_record(client, "anyformat", PUBLIC_URL)
            assert record is not None and [o.id for o in record.retiring] == [old_id]
            record.retiring[0].delete_after = time.time()
            await save_record(client, "anyformat", record)
            await registrar.retire_due()
            assert old_id not in fake_api.webhooks and old_id in fake_api.deleted()
            await wait_for(
                lambda: _not(a_accepts(old)),
                what="A refuses the old secret once it is deleted",
                within=30,
            )

            # Edge 2: copies retried after the old subscription was deleted.
            assert await deliver(http, a, two, new, "msg_new_2") == (200, "duplicate")
            assert await deliver(http, b, two, old, "msg_old_2") == (200, "duplicate")
            assert await deliver(http, a, one, new, "msg_new_1") == (200, "duplicate")
    await client.aclose()

    sync = own_redis.client()
    for stream in STREAMS:
        counts = entries_per_event(sync, stream)
        assert counts[b"ex-edge-1"] == 1 and counts[b"ex-edge-2"] == 1, (stream, counts)
    assert [w["id"] for w in fake_api.for_url(PUBLIC_URL)] == [new_record.id]


async def _not(result: object) -> bool:
    return not await result  # type: ignore[misc]


# --- serving whenever possible ------------------------------------------------------------


async def test_redis_started_only_after_the_relay_is_waited_for(
    fake_api: FakeAnyFormat, processes: list[RelayProcess]
) -> None:
    later = RedisServer()  # its port is chosen, nothing listens there yet
    try:
        process = relay(processes, later, fake_api)
        process.start(wait_ready=False)
        async with aiohttp.ClientSession() as http:
            await wait_for(
                lambda: _is(status_of(http, process, "/healthz"), 200),
                what="relay alive",
                within=30,
            )
            await wait_for(lambda: "registration_waiting_for_redis" in process.output(),
                        what="registration waits for Redis", within=30)  # fmt: skip
            assert await status_of(http, process, "/readyz") == 503
            assert fake_api.calls == []  # nothing is decided without Redis

            later.start()
            await wait_for(
                lambda: _is(status_of(http, process, "/readyz"), 200), within=60, what="ready"
            )
            body = event_body(extraction_id="ex-after-redis")
            secret = only_secret(fake_api)
            assert await deliver(http, process, body, secret, "msg_1") == (200, "accepted")
        assert process.process is not None and process.process.poll() is None
        assert len(fake_api.created()) == 1
        assert later.client().xlen("anyformat:events") == 1
        assert process.terminate() == 0
    finally:
        later.close()


async def _is(result: object, expected: int) -> bool:
    return await result == expected  # type: ignore[misc]


async def test_a_rejected_key_with_a_stored_secret_keeps_serving_and_says_so(
    own_redis: RedisServer, fake_api: FakeAnyFormat, processes: list[RelayProcess]
) -> None:
    first = relay(processes, own_redis, fake_api)
    first.start()
    secret = only_secret(fake_api)
    assert first.terminate() == 0
    calls_before = len(fake_api.calls)

    revoked = "afk_revoked_55aa11"
    process = relay(processes, own_redis, fake_api, ANYFORMAT_API_KEY=revoked)
    process.start()  # ready: with the stored secret
    await wait_for(
        lambda: "anyformat_api_key_rejected" in process.output(), what="error logged", within=30
    )
    async with aiohttp.ClientSession() as http:
        body = event_body(extraction_id="ex-revoked")
        assert await deliver(http, process, body, secret, "msg_1") == (200, "accepted")
        assert await status_of(http, process, "/readyz") == 200
        async with http.get(f"http://127.0.0.1:{process.admin_port}/metrics") as response:
            metrics = await response.text()
    assert "relay_registration_api_key_rejected 1.0" in metrics
    assert 'relay_registration_failures_total{reason="api_key_rejected"}' in metrics
    assert [c.status for c in fake_api.calls[calls_before:]][:1] == [401]
    assert fake_api.created()[1:] == [] and fake_api.deleted() == []  # nothing changed
    assert process.process is not None and process.process.poll() is None
    assert process.terminate() == 0
    output = process.output()
    assert revoked not in output and secret not in output and API_KEY not in output
    [line, *_] = [x for x in output.splitlines() if "anyformat_api_key_rejected" in x]
    assert '"error"' in line and "ANYFORMAT_API_KEY" in line


# --- the lock ------------------------------------------------------------------------------


async def test_a_paused_holder_whose_lock_was_taken_over_stops_before_its_next_call(
    own_redis: RedisServer, fake_api: FakeAnyFormat, processes: list[RelayProcess]
) -> None:
    """SIGSTOP the relay while it holds the lock and waits on the API; its lock expires
    and is taken over meanwhile. Resumed, it must not create (nor delete) anything; once
    the other holder is done, it registers normally, exactly once."""
    fake_api.hold("GET")
    process = relay(processes, own_redis, fake_api)
    process.start(wait_ready=False)
    await wait_for(
        lambda: [c.method for c in fake_api.calls] == ["GET"], what="holder mid-call", within=30
    )
    sync = own_redis.client()
    assert sync.get(LOCK_KEY) is not None

    process.signal(signal.SIGSTOP)
    sync.delete(LOCK_KEY)  # expired while paused...
    assert sync.set(LOCK_KEY, "the-new-holder", nx=True, px=60_000)  # ...and taken over
    fake_api.release("GET")  # the answer waits in the paused process's socket
    process.signal(signal.SIGCONT)

    await wait_for(
        lambda: "registration_lock_lost" in process.output(), what="lock loss seen", within=30
    )
    assert [c.method for c in fake_api.calls] == ["GET"]  # stopped before the create
    assert sync.get(LOCK_KEY) == b"the-new-holder"

    sync.delete(LOCK_KEY)  # the other holder is done (without registering)
    await asyncio.to_thread(process.wait_until, "/readyz", 60)
    assert len(fake_api.created()) == 1 and len(fake_api.for_url(PUBLIC_URL)) == 1
    assert process.terminate() == 0


def test_relay_register_without_redis_is_a_clear_error(fake_api: FakeAnyFormat) -> None:
    import subprocess
    import sys

    nowhere = RedisServer()  # never started: nothing listens on its port
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "RELAY_REDIS_URL": f"redis://:redis-pass-31337@127.0.0.1:{nowhere.port}/0",
        "ANYFORMAT_API_KEY": API_KEY,
        "ANYFORMAT_BASE_URL": fake_api.url,
        "RELAY_PUBLIC_URL": PUBLIC_URL,
    }
    result = subprocess.run([sys.executable, "-m", "relay", "register"], env=env, cwd="/",
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    nowhere.close()
    assert result.returncode == 1
    assert "Redis is unreachable (ConnectionError)" in result.stderr
    assert "redis-pass-31337" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and fake_api.calls == []


async def test_a_redis_cluster_not_up_at_start_up_is_waited_for(
    fake_api: FakeAnyFormat, processes: list[RelayProcess]
) -> None:
    """The cluster client fails outside RedisError when no node answers: still waited for."""
    nowhere = RedisServer()  # never started
    process = relay(processes, nowhere, fake_api, RELAY_REDIS_CLUSTER="true")
    process.start(wait_ready=False)
    await wait_for(lambda: process.output().count("registration_waiting_for_redis") >= 2,
                what="two registration attempts", within=30)  # fmt: skip
    assert process.process is not None and process.process.poll() is None  # still serving
    async with aiohttp.ClientSession() as http:
        assert await status_of(http, process, "/healthz") == 200
        assert await status_of(http, process, "/readyz") == 503
    assert fake_api.calls == []
    assert process.terminate() == 0
    nowhere.close()
