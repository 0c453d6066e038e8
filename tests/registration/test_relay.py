"""`relay run` with registration on: in-process relays and real processes."""

from __future__ import annotations

import asyncio
import json
import os

import aiohttp
import pytest
import redis
from cryptography.fernet import Fernet

from relay.receiver.app import RelayServer
from relay.registration.record import load_record
from tests.conftest import StartRelay
from tests.registration.conftest import EVENTS
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer, free_port
from tests.support.registering import PATH, PUBLIC_URL, only_secret, process_env, registering
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for


async def deliver(
    http: aiohttp.ClientSession, server: RelayServer, secret: str, body: bytes | None = None,
    msg_id: str | None = None,
) -> tuple[int, str]:  # fmt: skip
    body = body or event_body()
    url = f"http://127.0.0.1:{server.public_port}{PATH}"
    async with http.post(url, data=body, headers=sign(body, secret=secret, msg_id=msg_id)) as r:
        return r.status, (await r.json()).get("status", "")


async def ready(http: aiohttp.ClientSession, server: RelayServer) -> None:
    url = f"http://127.0.0.1:{server.admin_port}/readyz"

    async def answers_200() -> bool:
        async with http.get(url) as response:
            return response.status == 200

    await wait_for(answers_200, what="/readyz 200")


async def test_twenty_restarts_make_one_subscription_and_each_accepts_deliveries(
    start_relay: StartRelay, redis_url: str, fake_api: FakeAnyFormat, http: aiohttp.ClientSession
) -> None:
    for _ in range(20):
        server = await start_relay(redis_url, **registering(fake_api))
        await ready(http, server)
        assert await deliver(http, server, only_secret(fake_api)) == (200, "accepted")
        await server.stop()
    assert len(fake_api.created()) == 1 and len(fake_api.for_url(PUBLIC_URL)) == 1


async def test_with_a_stored_secret_the_relay_serves_while_the_api_is_down(
    start_relay: StartRelay, redis_url: str, fake_api: FakeAnyFormat, http: aiohttp.ClientSession
) -> None:
    first = await start_relay(redis_url, **registering(fake_api))
    await ready(http, first)
    secret = only_secret(fake_api)
    await first.stop()
    fake_api.fail_next(503, times=10_000)
    server = await start_relay(redis_url, **registering(fake_api))
    await ready(http, server)
    assert await deliver(http, server, secret) == (200, "accepted")


async def test_without_a_secret_deliveries_and_readiness_wait_for_registration(
    start_relay: StartRelay, redis_url: str, fake_api: FakeAnyFormat, http: aiohttp.ClientSession
) -> None:
    fake_api.fail_next(500, times=20)
    server = await start_relay(redis_url, **registering(fake_api))
    body = event_body()
    url = f"http://127.0.0.1:{server.public_port}{PATH}"
    async with http.post(url, data=body, headers=sign(body)) as response:
        assert response.status == 503 and "Retry-After" in response.headers
    async with http.get(f"http://127.0.0.1:{server.admin_port}/readyz") as response:
        assert response.status == 503
    await ready(http, server)  # the failures run out, registration completes
    assert await deliver(http, server, only_secret(fake_api)) == (200, "accepted")


@pytest.mark.parametrize("cluster", [False, True])
async def test_redis_unreachable_at_start_up_is_not_fatal(
    start_relay: StartRelay, fake_api: FakeAnyFormat, http: aiohttp.ClientSession, cluster: bool
) -> None:
    """Nothing listens at the Redis URL (a Redis Cluster client fails outside RedisError):
    the relay starts, answers 503 and is not ready, and registration waits for Redis."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    server = await start_relay(url, RELAY_REDIS_CLUSTER=cluster, **registering(fake_api))
    async with http.get(f"http://127.0.0.1:{server.admin_port}/readyz") as response:
        assert response.status == 503
        assert "redis" in await response.json()
    body = event_body()
    status, _ = await deliver(http, server, "whsec_" + "A" * 44, body)
    assert status == 503
    registry = server.relay.metrics.registry
    # Registration has tried, failed on Redis, and lives on to retry.
    await wait_for(
        lambda: registry.get_sample_value(
            "relay_registration_failures_total", {"reason": "redis_unavailable"}
        ),
        what="a registration failing on Redis",
    )
    assert server.registration is not None and not server.registration.done()
    assert fake_api.calls == []


async def test_rotation_overlap_accepts_both_secrets_and_writes_one_entry(
    start_relay: StartRelay,
    redis_url: str,
    redis_sync: redis.Redis,
    fake_api: FakeAnyFormat,
    http: aiohttp.ClientSession,
) -> None:
    import subprocess
    import sys

    server = await start_relay(redis_url, **registering(fake_api))
    await ready(http, server)
    old_secret = only_secret(fake_api)
    # A process of its own, as an operator runs it: the CLI configures logging globally,
    # which in this process would redirect the later tests' logs.
    cli_env = {k: str(v) for k, v in registering(fake_api).items() if v is not None}
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           **cli_env, "RELAY_REDIS_URL": redis_url}  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "relay", "rotate-secret", "--grace", "60"],
        env=env, cwd="/", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert old_secret not in result.stdout + result.stderr
    record = await load_record(server.relay.redis, "anyformat", PUBLIC_URL)
    assert record is not None and len(record.secrets) == 2
    new_secret = record.secret.get_secret_value()
    # The replica re-reads the record.
    await wait_for(lambda: len(server.relay.secrets.keys) == 2, what="the rotation seen")

    # AnyFormat delivers the same event to both subscriptions, under different ids.
    body = event_body(extraction_id="ex-rotated")
    assert await deliver(http, server, old_secret, body, "msg_old_sub") == (200, "accepted")
    assert await deliver(http, server, new_secret, body, "msg_new_sub") == (200, "duplicate")
    assert redis_sync.xlen("anyformat:events") == 1
    # A different event in the overlap is still its own entry.
    other = event_body(extraction_id="ex-other")
    assert await deliver(http, server, new_secret, other) == (200, "accepted")


# --- real processes -----------------------------------------------------------------------


@pytest.mark.process
async def test_five_replicas_started_at_once_make_one_create_call(
    own_redis: RedisServer, fake_api: FakeAnyFormat, processes: list[RelayProcess]
) -> None:
    fake_api.delay = 0.1
    processes += [RelayProcess(process_env(own_redis, fake_api)) for _ in range(5)]
    for process in processes:
        process.start(wait_ready=False)
    for process in processes:
        await asyncio.to_thread(process.wait_until, "/readyz", 30)
    assert len(fake_api.created()) == 1
    secret = only_secret(fake_api)
    async with aiohttp.ClientSession() as http:
        for process in processes:
            body = event_body()
            async with http.post(
                f"{process.url}{PATH}", data=body, headers=sign(body, secret=secret)
            ) as response:
                assert response.status == 200
    for process in processes:
        assert process.terminate() == 0
        output = process.output()
        assert API_KEY not in output and secret not in output
        assert secret.removeprefix("whsec_") not in output
    assert own_redis.client().xlen("anyformat:events") == 5


def run_to_exit(process: RelayProcess) -> tuple[int, str]:
    process.start(wait_ready=False)
    assert process.process is not None
    return process.process.wait(timeout=30), process.output()


@pytest.mark.process
def test_a_rejected_api_key_stops_the_relay_with_a_clear_message(
    own_redis: RedisServer, fake_api: FakeAnyFormat
) -> None:
    code, output = run_to_exit(
        RelayProcess(process_env(own_redis, fake_api, ANYFORMAT_API_KEY="afk_revoked_998877"))
    )
    assert code == 1
    assert "relay: AnyFormat rejected ANYFORMAT_API_KEY (HTTP 401)" in output
    assert "afk_revoked_998877" not in output and "Traceback" not in output


@pytest.mark.process
def test_a_refused_registration_stops_the_relay_with_the_apis_detail(
    own_redis: RedisServer, fake_api: FakeAnyFormat
) -> None:
    env = process_env(own_redis, fake_api, RELAY_EVENTS="extraction.completed,extraction.exploded")
    code, output = run_to_exit(RelayProcess(env))
    assert code == 1 and "body.events: Unknown event: extraction.exploded" in output


@pytest.mark.process
def test_an_http_public_url_is_refused_before_any_call(
    own_redis: RedisServer, fake_api: FakeAnyFormat
) -> None:
    env = process_env(own_redis, fake_api, RELAY_PUBLIC_URL="http://relay.example.test/hook")
    code, output = run_to_exit(RelayProcess(env))
    assert code == 2 and "RELAY_PUBLIC_URL: must be an https:// URL" in output
    assert fake_api.calls == []


@pytest.mark.process
def test_missing_registration_settings_are_named(own_redis: RedisServer) -> None:
    code, output = run_to_exit(RelayProcess({"RELAY_REDIS_URL": own_redis.url}))
    assert code == 2
    assert "ANYFORMAT_API_KEY is required while RELAY_REGISTER=true" in output
    assert "RELAY_PUBLIC_URL is required while RELAY_REGISTER=true" in output


@pytest.mark.process
async def test_encryption_at_rest_and_a_wrong_key_is_a_start_up_error(
    own_redis: RedisServer, fake_api: FakeAnyFormat, processes: list[RelayProcess]
) -> None:
    key = Fernet.generate_key().decode()
    first = RelayProcess(process_env(own_redis, fake_api, RELAY_SECRET_ENCRYPTION_KEY=key))
    processes.append(first)
    first.start()
    assert first.terminate() == 0
    secret = only_secret(fake_api)
    [raw] = [own_redis.client().get(k) for k in own_redis.client().keys("*registration*")]
    assert secret.encode() not in raw and b"enc:v1:" in raw

    wrong = Fernet.generate_key().decode()
    code, output = run_to_exit(
        RelayProcess(process_env(own_redis, fake_api, RELAY_SECRET_ENCRYPTION_KEY=wrong))
    )
    assert code == 1
    assert "RELAY_SECRET_ENCRYPTION_KEY does not decrypt the stored webhook secret" in output
    assert key not in output and wrong not in output
    assert len(fake_api.created()) == 1


@pytest.mark.process
def test_cli_register_list_unregister(own_redis: RedisServer, fake_api: FakeAnyFormat) -> None:
    import subprocess
    import sys

    foreign = fake_api.add("https://someone-else.example.test/h")
    # PYTHONPATH passed on: the commands run this checkout's code, not an installed copy.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           **process_env(own_redis, fake_api)}  # fmt: skip

    def relay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relay", *args], env=env, cwd="/",
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    registered = relay("register")
    assert registered.returncode == 0, registered.stderr
    [webhook] = fake_api.for_url(PUBLIC_URL)
    assert registered.stdout.startswith(f"registered {PUBLIC_URL} as {webhook['id']}")
    assert fake_api.secrets[webhook["id"]] not in registered.stdout + registered.stderr

    listed = json.loads(relay("webhooks", "list", "--json").stdout)
    assert {row["id"]: row["ours"] for row in listed} == {webhook["id"]: "current", foreign: ""}

    assert relay("register").returncode == 0 and len(fake_api.created()) == 1
    unregistered = relay("unregister")
    assert unregistered.stdout.strip() == f"deleted {webhook['id']}"
    assert list(fake_api.webhooks) == [foreign]
    assert EVENTS  # the defaults were subscribed
