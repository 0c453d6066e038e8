"""The relay, the CLI and the workers find the master through Redis Sentinel, and follow it
to the promoted replica after a failover, without a restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from relay.cli import main
from tests.conftest import StartRelay
from tests.ha.conftest import SENTINEL_PASSWORD
from tests.support.entry_schemas import relay_fields
from tests.support.process import RelayProcess
from tests.support.redis_sentinel import SETTLING, RedisSentinelSet
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for, wait_for_sync

ROOT = str(Path(__file__).resolve().parents[2])
STREAM = "anyformat:events"


def sentinel_env(deployment: RedisSentinelSet, **extra: Any) -> dict[str, Any]:
    return {
        # The URL's host is never used: the sentinels name the master.
        "RELAY_REDIS_URL": "redis://unused.invalid:6379/0",
        "RELAY_REDIS_SENTINELS": deployment.addresses,
        "RELAY_REDIS_SENTINEL_MASTER": "mymaster",
        "RELAY_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        **extra,
    }


async def test_the_relay_reaches_the_master_through_the_sentinels(
    sentinels: RedisSentinelSet, start_relay: StartRelay, http: aiohttp.ClientSession
) -> None:
    env = sentinel_env(sentinels)
    server = await start_relay(env.pop("RELAY_REDIS_URL"), **env)
    body = event_body()
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    async with http.post(url, data=body, headers=sign(body, msg_id="msg_s1")) as response:
        assert response.status == 200
    [(_, fields)] = sentinels.master.client().xrange(STREAM)
    assert fields[b"id"] == b"msg_s1"


def test_the_cli_reaches_the_master_and_masks_the_sentinel_password(
    sentinels: RedisSentinelSet,
) -> None:
    sentinels.master.client().xadd(STREAM, relay_fields("c1"))
    cli = CliRunner(env={k: str(v) for k, v in sentinel_env(sentinels).items()})
    stats = cli.invoke(main, ["stats", STREAM, "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)[0]["length"] == 1
    shown = cli.invoke(main, ["config"]).output
    assert "RELAY_REDIS_SENTINEL_PASSWORD=********" in shown
    assert f"RELAY_REDIS_SENTINELS={sentinels.addresses}" in shown
    assert SENTINEL_PASSWORD not in shown


def test_a_wrong_sentinel_password_is_refused_and_never_shown(
    sentinels: RedisSentinelSet,
) -> None:
    env = sentinel_env(sentinels, RELAY_REDIS_SENTINEL_PASSWORD="not-the-password")
    result = CliRunner(env=env).invoke(main, ["stats", "--json"])
    assert result.exit_code != 0
    assert "not-the-password" not in result.output + repr(result.exception)


async def test_a_graceful_failover_moves_the_relay_to_the_new_master(
    sentinels: RedisSentinelSet, start_relay: StartRelay, http: aiohttp.ClientSession
) -> None:
    """SENTINEL FAILOVER demotes a live master: the relay's connections to it are closed
    or answered READONLY, and it carries on against the promoted replica."""
    env = sentinel_env(sentinels, RELAY_REDIS_TIMEOUT=2, RELAY_REDIS_WAIT_REPLICAS=1)
    server = await start_relay(env.pop("RELAY_REDIS_URL"), **env)
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"

    async def deliver_until_2xx(msg_id: str) -> str:
        """Re-sent like a provider's retry until acknowledged; only 503s meanwhile."""
        body = event_body(extraction_id=msg_id)

        async def acknowledged() -> str | None:
            async with http.post(url, data=body, headers=sign(body, msg_id=msg_id)) as r:
                document = await r.json()
                if r.status == 200:
                    return str(document["status"])
                assert r.status == 503, document
                return None

        return await wait_for(acknowledged, what=f"{msg_id} acknowledged", within=60)

    assert await deliver_until_2xx("msg_before") == "accepted"
    sentinels.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", "mymaster")
    wait_for_sync(
        lambda: sentinels.current_master() is sentinels.replica,
        what="the failover",
        within=60,
        ignoring=SETTLING,
    )
    # Until the demoted master has rejoined as a replica, WAIT 1 answers 503: the first
    # attempt may be written and unconfirmed, and its re-send then confirmed as a duplicate.
    assert await deliver_until_2xx("msg_after") in ("accepted", "duplicate")
    assert await deliver_until_2xx("msg_before") == "duplicate"  # it was replicated
    ids = [f[b"id"] for _, f in sentinels.replica.client().xrange(STREAM)]
    assert ids == [b"msg_before", b"msg_after"]


def worker_process(deployment: RedisSentinelSet, recorder: RedisServer) -> RelayProcess:
    env = sentinel_env(deployment, TEST_REDIS_URL=recorder.url, RELAY_LOG_LEVEL="warning",
                       RELAY_REDIS_TIMEOUT="2")  # fmt: skip
    return RelayProcess(
        env, "worker", "--stream", STREAM, "--group", "ha", "--handler",
        "tests.support.handlers:record", "--start-id", "0", "--claim-idle", "5",
        cwd=ROOT,
    )  # fmt: skip


@pytest.mark.chaos
def test_workers_keep_consuming_across_a_master_killed(
    sentinels: RedisSentinelSet, own_redis: RedisServer, say: Callable[[str], None]
) -> None:
    recorder = own_redis.client()

    def handled() -> set[str]:
        return {json.loads(item)["id"] for item in recorder.lrange("handled", 0, -1)}

    def add(master: RedisServer, names: range) -> None:
        client = master.client()
        for n in names:
            client.xadd(STREAM, relay_fields(n))
        assert client.execute_command("WAIT", 1, 5000) >= 1 or master is sentinels.replica

    add(sentinels.master, range(100))
    worker = worker_process(sentinels, own_redis)
    worker.start(wait_ready=False)
    try:
        wait_for_sync(
            lambda: len(handled()) == 100,
            what="the first hundred handled",
            within=60,
            ignoring=SETTLING,
        )
        _, promoted = sentinels.kill_master()
        add(promoted, range(100, 200))  # written to the new master only
        wait_for_sync(
            lambda: len(handled()) == 200,
            what="the worker following the failover",
            within=60,
            ignoring=SETTLING,
        )
        pending = promoted.client().xpending(STREAM, "ha")["pending"]
        wait_for_sync(
            lambda: promoted.client().xpending(STREAM, "ha")["pending"] == 0,
            what="nothing pending on the new master",
            within=30,
            ignoring=SETTLING,
        )
    finally:
        worker.kill()
    attempts = recorder.llen("handled")
    say(f"handled={len(handled())} attempts={attempts} pending_after_failover={pending}")
    assert handled() == {f"msg_{n}" for n in range(200)}
    assert "Traceback" not in worker.output()
