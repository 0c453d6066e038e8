"""The relay, registration and CLI on a real Redis Cluster (three masters, one replica each)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

import aiohttp
import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from redis.asyncio import Redis

from relay.cli import main
from relay.registration.client import AnyFormatClient
from relay.registration.record import load_record
from relay.registration.registrar import Registrar
from tests.chaos.sender import send_all
from tests.conftest import StartRelay
from tests.support.entry_schemas import dead_letter_fields, relay_fields
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.http import concurrent_copies
from tests.support.redis_cluster import RedisCluster
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for

STREAMS = ("anyformat:events", "anyformat:events:extraction.completed")


def test_the_default_streams_live_on_different_masters(cluster: RedisCluster) -> None:
    client = cluster.client()
    nodes = {client.get_node_from_key(stream).port for stream in STREAMS}
    assert len(nodes) == 2


async def test_fan_out_across_shards_exactly_once(
    start_relay: StartRelay, cluster: RedisCluster, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(cluster.url, RELAY_REDIS_CLUSTER=True)
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    body = event_body()
    headers = sign(body, msg_id="msg_cluster")

    statuses = await concurrent_copies(http, url, body, headers, 20)
    # Each slot is settled on its own: two concurrent copies can each come first in a
    # different stream's slot, and both answer "accepted". What must hold is per stream.
    assert "accepted" in statuses and set(statuses) <= {"accepted", "duplicate"}
    client = cluster.client()
    for stream in STREAMS:
        [(_, fields)] = client.xrange(stream)  # exactly one entry in every stream
        assert fields[b"payload"] == body
    async with http.get(f"http://127.0.0.1:{server.admin_port}/readyz") as response:
        assert response.status == 200


async def test_content_marks_dedupe_across_shards(
    start_relay: StartRelay, cluster: RedisCluster, http: aiohttp.ClientSession
) -> None:
    """The content mark lives in each stream's dedupe set, in that stream's slot: a twin
    under another id is a duplicate on every shard."""
    server = await start_relay(cluster.url, RELAY_REDIS_CLUSTER=True)
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    body = event_body(extraction_id="ex-cluster")
    assert await concurrent_copies(http, url, body, sign(body, msg_id="msg_1"), 1) == ["accepted"]
    twins = [await concurrent_copies(http, url, body, sign(body, msg_id=f"msg_{n}"), 1)
             for n in range(2, 6)]  # fmt: skip
    assert twins == [["duplicate"]] * 4
    client = cluster.client()
    for stream in STREAMS:
        [(_, fields)] = client.xrange(stream)
        assert fields[b"id"] == b"msg_1"


async def test_registration_lock_record_and_secret_reload_on_a_cluster(
    start_relay: StartRelay,
    cluster: RedisCluster,
    cluster_client: Redis,
    fake_api: FakeAnyFormat,
    http: aiohttp.ClientSession,
) -> None:
    url = "https://relay.example.test/webhooks/anyformat"
    async with AnyFormatClient(fake_api.url, SecretStr(API_KEY)) as api:
        registrars = [
            Registrar(cluster_client, api, prefix="anyformat", public_url=url,
                      events=["extraction.completed"])
            for _ in range(3)
        ]  # fmt: skip
        records = await asyncio.gather(*(r.ensure() for r in registrars))
        assert len({r.id for r in records}) == 1 and len(fake_api.created()) == 1
        server = await start_relay(
            cluster.url, RELAY_REDIS_CLUSTER=True, RELAY_WEBHOOK_SECRET=None,
            RELAY_PUBLIC_URL=url, RELAY_SECRET_REFRESH_INTERVAL=0.1,
        )  # fmt: skip
        before = server.relay.secrets.keys
        assert before  # the first record, read at start
        new, _ = await registrars[0].rotate(grace=None)  # the relay picks the new one up
        await wait_for(
            lambda: server.relay.secrets.keys not in (before, ()), what="the rotated key set read"
        )
    body = event_body()
    secret = new.secret.get_secret_value()
    target = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    async with http.post(target, data=body, headers=sign(body, secret=secret)) as response:
        assert response.status == 200
    stored = await load_record(cluster_client, "anyformat", url)
    assert stored is not None and stored.id == new.id


def test_cli_stats_and_dlq_on_a_cluster(cluster: RedisCluster) -> None:
    client = cluster.client()
    client.xadd("anyformat:events", relay_fields(1))
    client.xgroup_create("anyformat:events", "billing", id="0")
    dead = client.xadd("anyformat:events:dlq", dead_letter_fields(0, error="boom")).decode()
    cli = CliRunner(env={"RELAY_REDIS_URL": cluster.url, "RELAY_REDIS_CLUSTER": "true"})
    stats = json.loads(cli.invoke(main, ["stats", "--json"]).output)
    assert [(s["stream"], s["length"], s["dlq_length"]) for s in stats] == [
        ("anyformat:events", 1, 1)
    ]
    listed = json.loads(cli.invoke(main, ["dlq", "list", "anyformat:events", "--json"]).output)
    assert [row["dlq_id"] for row in listed] == [dead]
    replayed = cli.invoke(main, ["dlq", "replay", "anyformat:events", "--all"])
    assert "1 replayed" in replayed.output, replayed.output
    assert client.xlen("anyformat:events") == 2 and client.xlen("anyformat:events:dlq") == 0


@pytest.mark.chaos
async def test_a_master_failover_during_a_run(
    start_relay: StartRelay, cluster: RedisCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_relay(cluster.url, RELAY_REDIS_CLUSTER=True, RELAY_REDIS_TIMEOUT=1)
    replica = cluster.replica_of(STREAMS[0])

    def failover(stop: threading.Event) -> None:
        if not stop.wait(1.0):
            replica.client().execute_command("CLUSTER", "FAILOVER")

    stop = threading.Event()
    thread = threading.Thread(target=failover, args=(stop,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
        report = await send_all(url, 300, rate=100, deadline_s=60)
    finally:
        stop.set()
        thread.join(10)
    await wait_for(
        lambda: replica.client().execute_command("ROLE")[0] == b"master",
        what="the replica promoted by the failover",
    )
    client = cluster.client()
    with capsys.disabled():
        print(f"\n[cluster failover] {report.summary()}")
    assert len(report.acknowledged) == 300, report.summary()
    for stream in STREAMS:
        ids = Counter(fields[b"id"].decode() for _, fields in client.xrange(stream))
        assert len(ids) == 300 and set(ids.values()) == {1}, (stream, report.summary())
