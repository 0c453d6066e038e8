"""RELAY_REDIS_WAIT_REPLICAS: a 200 only once the replicas hold the write; fewer in time is
a 503 replication_timeout, and the sender's re-send dedupes and confirms the first write."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import aiohttp
import pytest
from redis.asyncio import Redis

from relay.redis.replication import ReplicaAck
from relay.streams.errors import ReplicationTimeout
from relay.streams.writer import Entry, FanoutWriter
from tests.conftest import StartRelay
from tests.support.entry_schemas import relay_entry
from tests.support.redis_sentinel import SETTLING
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for_sync

STREAMS = ("anyformat:events", "anyformat:events:extraction.completed")
# Generous: a replica on a busy machine must confirm in time when it is healthy.
WAIT_ONE = {"RELAY_REDIS_WAIT_REPLICAS": 1, "RELAY_REDIS_WAIT_TIMEOUT": 1000}


def replica_of(master: RedisServer) -> RedisServer:
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port))
    replica.start()
    client = master.client()
    wait_for_sync(
        lambda: client.execute_command("WAIT", 1, 100) >= 1,
        what="the replica synced",
        within=30,
        ignoring=SETTLING,
    )
    return replica


@pytest.fixture
def replica(own_redis: RedisServer) -> Iterator[RedisServer]:
    server = replica_of(own_redis)
    yield server
    server.close()


async def deliver(http: aiohttp.ClientSession, port: int, msg_id: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    body = event_body(extraction_id=f"ex-{msg_id}")
    url = f"http://127.0.0.1:{port}/webhooks/anyformat"
    async with http.post(url, data=body, headers=sign(body, msg_id=msg_id)) as response:
        return response.status, await response.json()


async def test_with_no_replica_the_answer_is_503_replication_timeout_until_one_confirms(
    start_relay: StartRelay, own_redis: RedisServer, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(own_redis.url, **WAIT_ONE)
    for _ in range(2):  # the first write, then the re-send: a duplicate waits as well
        status, document = await deliver(http, server.public_port, "msg_w1")
        assert (status, document["reason"]) == (503, "replication_timeout")
    client = own_redis.client()
    assert [client.xlen(stream) for stream in STREAMS] == [1, 1]  # on the master, once

    replica = replica_of(own_redis)
    try:
        status, document = await deliver(http, server.public_port, "msg_w1")
        assert (status, document["status"]) == (200, "duplicate")  # the re-send confirms
        assert [replica.client().xlen(stream) for stream in STREAMS] == [1, 1]
    finally:
        replica.close()


async def test_a_200_means_the_replica_already_holds_the_entries(
    start_relay: StartRelay,
    own_redis: RedisServer,
    replica: RedisServer,
    http: aiohttp.ClientSession,
) -> None:
    server = await start_relay(own_redis.url, **WAIT_ONE)
    results = await asyncio.gather(
        *(deliver(http, server.public_port, f"msg_r{n}") for n in range(50))
    )
    assert {status for status, _ in results} == {200}
    # Read at once, no polling: WAIT made the answer wait for the replica.
    on_replica = replica.client()
    for stream in STREAMS:
        ids = [fields[b"id"].decode() for _, fields in on_replica.xrange(stream)]
        assert sorted(ids) == sorted(f"msg_r{n}" for n in range(50))


async def test_a_duplicate_waits_for_the_replication_of_a_write_made_elsewhere(
    own_redis: RedisServer, replica: RedisServer
) -> None:
    """Writer A writes while the replica is stalled; the re-send reaches writer B, whose
    one connection's own last write was long replicated: B must not confirm it yet."""
    ack = ReplicaAck(1, 500)
    clients = [Redis.from_url(own_redis.url, socket_timeout=5, max_connections=1)
               for _ in range(2)]  # fmt: skip
    writer_a, writer_b = (FanoutWriter(c, dedupe_ttl=60, ack=ack) for c in clients)
    try:
        assert await writer_b.write(entry("warm"), STREAMS) != [None, None]
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(ReplicationTimeout):
                await writer_a.write(entry("msg_d1"), STREAMS)
            with pytest.raises(ReplicationTimeout):
                await writer_b.write(entry("msg_d1"), STREAMS)  # a duplicate, unconfirmed
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        assert await writer_b.write(entry("msg_d1"), STREAMS) == [None, None]  # confirmed
        ids = [fields[b"id"] for _, fields in replica.client().xrange(STREAMS[0])]
        assert ids.count(b"msg_d1") == 1  # no polling: the confirmation means it is there
    finally:
        for client in clients:
            await client.aclose()


async def test_a_resend_through_another_relay_is_answered_once_the_replica_confirms(
    start_relay: StartRelay,
    own_redis: RedisServer,
    replica: RedisServer,
    http: aiohttp.ClientSession,
) -> None:
    relay_a = await start_relay(own_redis.url, **WAIT_ONE)
    relay_b = await start_relay(own_redis.url, **WAIT_ONE)
    assert replica.process is not None
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        for relay in (relay_a, relay_b):
            status, document = await deliver(http, relay.public_port, "msg_d1")
            assert (status, document["reason"]) == (503, "replication_timeout")
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
    status, document = await deliver(http, relay_b.public_port, "msg_d1")
    assert (status, document["status"]) == (200, "duplicate")


def entry(message_id: str) -> Entry:
    return relay_entry(message_id)


async def test_one_wait_per_micro_batch_and_every_delivery_of_it_answered(
    own_client: Redis, own_redis: RedisServer
) -> None:
    writer = FanoutWriter(own_client, dedupe_ttl=60, ack=ReplicaAck(1, 100))
    entries = [relay_entry(f"m{n}") for n in range(40)]
    results = await asyncio.gather(
        *(writer.write(entry, ["s:a", "s:b"]) for entry in entries), return_exceptions=True
    )
    assert all(isinstance(result, ReplicationTimeout) for result in results)
    assert writer.batcher.batches < 10  # one WAIT (of 100 ms) per batch, not per delivery
    assert await own_client.xlen("s:a") == 40 and await own_client.xlen("s:b") == 40

    replica = replica_of(own_redis)
    patient = FanoutWriter(own_client, dedupe_ttl=60, ack=ReplicaAck(1, 2000))
    try:
        again = await asyncio.gather(*(patient.write(entry, ["s:a", "s:b"]) for entry in entries))
        assert again == [[None, None]] * 40  # duplicates, confirmed
    finally:
        replica.close()


async def test_a_demoted_master_answers_503_and_the_connection_that_met_readonly_is_closed(
    start_relay: StartRelay, own_redis: RedisServer, http: aiohttp.ClientSession
) -> None:
    other = RedisServer()
    other.start()
    try:
        server = await start_relay(own_redis.url)
        status, _ = await deliver(http, server.public_port, "msg_ro0")
        assert status == 200
        admin = own_redis.client()
        before = {c["id"] for c in admin.client_list() if c["name"].startswith("anyformat")}
        admin.execute_command("REPLICAOF", "127.0.0.1", str(other.port))  # demoted
        wait_for_sync(
            lambda: admin.execute_command("ROLE")[0] == b"slave",
            what="the old master demoted",
            within=10,
            ignoring=SETTLING,
        )
        status, document = await deliver(http, server.public_port, "msg_ro1")
        assert (status, document["reason"]) == (503, "redis_unavailable")
        after = {c["id"] for c in admin.client_list() if c["name"].startswith("anyformat")}
        # The batch connection that met READONLY is gone (it reconnects, and asks Sentinel,
        # anew); the relay's other pooled connections (trimmer, health) may stay.
        assert before - after
        admin.execute_command("REPLICAOF", "NO", "ONE")
        status, _ = await deliver(http, server.public_port, "msg_ro1")
        assert status == 200
    finally:
        other.close()
