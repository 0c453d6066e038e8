"""Replica acknowledgement on Redis Cluster: one WAIT per node, on the connection that wrote,
and a master SIGKILLed under load (not the graceful CLUSTER FAILOVER) loses nothing that was
acknowledged."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from relay.redis.replication import ReplicaAck
from relay.streams.errors import ReplicationTimeout
from relay.streams.writer import Entry, FanoutWriter
from tests.chaos.sender import send_all
from tests.conftest import StartRelay
from tests.support.entry_schemas import relay_entry
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_sentinel import SETTLING
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for_sync

STREAMS = ("anyformat:events", "anyformat:events:extraction.completed")


def entry(message_id: str) -> Entry:
    return relay_entry(message_id)


async def test_each_node_confirms_its_own_streams(
    replicated_cluster: RedisCluster, cluster_client: Redis
) -> None:
    writer = FanoutWriter(cluster_client, dedupe_ttl=60, ack=ReplicaAck(1, 2000))
    written = await writer.write(entry("msg_c1"), STREAMS)
    assert None not in written
    for stream in STREAMS:  # read on each replica at once: the answer waited for it
        replica = replicated_cluster.replica_of(stream).client()
        replica.execute_command("READONLY")  # reads on a cluster replica, this connection
        [(_, fields)] = replica.xrange(stream)
        assert fields[b"id"] == b"msg_c1"
    assert await writer.write(entry("msg_c1"), STREAMS) == [None, None]  # confirmed too


async def test_more_replicas_than_a_node_has_is_a_replication_timeout(
    replicated_cluster: RedisCluster, cluster_client: Redis
) -> None:
    writer = FanoutWriter(cluster_client, dedupe_ttl=60, ack=ReplicaAck(2, 100))
    with pytest.raises(ReplicationTimeout):
        await writer.write(entry("msg_c2"), STREAMS)
    nodes = replicated_cluster.client()
    assert [nodes.xlen(stream) for stream in STREAMS] == [1, 1]  # written, unconfirmed


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    """A private cluster: this test kills one of its masters."""
    private = RedisCluster().start()
    yield private
    private.close()


@pytest.mark.chaos
async def test_a_master_sigkilled_under_load_loses_nothing_acknowledged(
    start_relay: StartRelay, own_cluster: RedisCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_relay(
        own_cluster.url, RELAY_REDIS_CLUSTER=True, RELAY_REDIS_TIMEOUT=2,
        RELAY_REDIS_WAIT_REPLICAS=1, RELAY_REDIS_WAIT_TIMEOUT=1000,
    )  # fmt: skip
    victim = master_of(own_cluster, STREAMS[0])
    replica = own_cluster.replica_of(STREAMS[0])
    figures: dict[str, float] = {}

    def kill(stop: threading.Event) -> None:
        if stop.wait(3.0):
            return
        started = time.monotonic()
        victim.kill()  # SIGKILL: no handover, the replica is promoted by election
        wait_for_sync(
            lambda: replica.client().execute_command("ROLE")[0] == b"master",
            what="the replica promoted",
            within=60,
            ignoring=SETTLING,
        )
        figures["promoted_after_s"] = time.monotonic() - started
        victim.start()  # its nodes.conf makes it rejoin, as the new master's replica
        wait_for_sync(
            lambda: replica.client().execute_command("WAIT", 1, 100) >= 1,
            what="the killed master back as a replica",
            within=60,
            ignoring=SETTLING,
        )
        figures["replica_back_after_s"] = time.monotonic() - started

    stop = threading.Event()
    thread = threading.Thread(target=kill, args=(stop,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
        report = await send_all(url, 1000, rate=100, deadline_s=120)
    finally:
        stop.set()
        thread.join(90)
    assert "promoted_after_s" in figures, "the master was never killed"
    own_cluster.wait_ok()
    nodes = own_cluster.client()
    found = {s: Counter(f[b"id"].decode() for _, f in nodes.xrange(s)) for s in STREAMS}
    lost = {s: len(report.acknowledged - set(ids)) for s, ids in found.items()}
    doubled = {s: sum(n - 1 for n in ids.values()) for s, ids in found.items()}
    with capsys.disabled():
        rounded = " ".join(f"{k}={v:.1f}" for k, v in figures.items())
        print(f"\n[cluster SIGKILL] {report.summary()} lost={lost} doubled={doubled} {rounded}")
    assert len(report.acknowledged) == 1000, report.summary()
    assert set(lost.values()) == {0} and set(doubled.values()) == {0}


def master_of(cluster: RedisCluster, key: str) -> RedisServer:
    port = cluster.client().get_node_from_key(key).port
    return next(node for node in cluster.nodes if node.port == port)
