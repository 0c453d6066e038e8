"""The relay_v1 Functions library: loaded safely by many relays and across versions, on
every master; its dead-letter and replay calls are idempotent, on one Redis and on Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot
from redis.exceptions import ResponseError

from relay.redis.functions import DEAD_LETTER, LIBRARY, REPLAY, REVISION, fcall, load_library
from relay.redis.keys import dedupe_key, replays_key, trail_records_key
from relay.worker.deadletter import dead_letter, list_dead, replay, replay_marks_key
from tests.conftest import StartRelay
from tests.support.entry_schemas import relay_fields

GROUP = "billing"


@pytest.fixture(params=["redis-server", "cluster"])
async def client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Redis]:
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        client = cast(Redis, RedisCluster.from_url(url, socket_timeout=5))
    else:
        client = Redis.from_url(redis_url, socket_timeout=5)
    await client.flushall()
    await _each_master(client, "FUNCTION", "FLUSH")
    yield client
    await client.aclose()


async def _each_master(client: Redis, *command: Any) -> list[Any]:
    if isinstance(client, RedisCluster):
        cluster = cast(RedisCluster, client)
        await cluster.initialize()
        assert cluster.get_primaries()
        return [await cluster.execute_command(*command, target_nodes=node)
                for node in cluster.get_primaries()]  # fmt: skip
    return [await cast(Any, client).execute_command(*command)]


async def revisions(client: Redis) -> list[int]:
    return [int(r) for r in await _each_master(client, "FCALL_RO", "relay_v1_revision", 0)]


def with_revision(revision: int) -> str:
    return LIBRARY.replace(f"local REVISION = {REVISION}", f"local REVISION = {revision}")


async def test_many_relays_loading_at_once_leave_one_library_on_every_master(
    client: Redis,
) -> None:
    await asyncio.gather(*(load_library(client) for _ in range(8)))
    assert set(await revisions(client)) == {REVISION}
    for listing in await _each_master(client, "FUNCTION", "LIST", "LIBRARYNAME", "relay_v1"):
        assert len(listing) == 1


async def test_an_older_library_is_upgraded_and_a_newer_one_never_downgraded(
    client: Redis,
) -> None:
    await _each_master(client, "FUNCTION", "LOAD", with_revision(0))
    await load_library(client)
    assert set(await revisions(client)) == {REVISION}
    await _each_master(client, "FUNCTION", "LOAD", "REPLACE", with_revision(REVISION + 1))
    await load_library(client)
    assert set(await revisions(client)) == {REVISION + 1}  # a newer relay's stays


async def test_a_call_on_a_server_without_the_library_loads_it(client: Redis) -> None:
    stream = "{t}:events"
    new_id = await fcall(client, REPLAY, [stream, replay_marks_key(stream), replays_key(stream)],
                         ["5-0", *sum(relay_fields(1).items(), ())])  # fmt: skip
    assert new_id and await revisions(client)


async def read_one(client: Redis, stream: str) -> tuple[str, dict[str, bytes]]:
    await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await client.xadd(stream, relay_fields(1))
    [[_, [(entry_id, raw)]]] = await client.xreadgroup(GROUP, "c", {stream: ">"}, count=1)
    return entry_id.decode(), {k.decode(): v for k, v in raw.items()}


@pytest.mark.parametrize("stream", ["anyformat:events", "{anyformat}:events"])
async def test_dead_letter_then_crash_then_both_again_leaves_one_dead_letter(
    client: Redis, stream: str
) -> None:
    """On Cluster a stream and its DLQ sit in different slots unless the stream is
    hash-tagged: the XACK is then a call of its own. A crash after the FCALL and before
    that XACK leaves the entry pending; doing both again writes nothing more."""
    dlq = f"{stream}:dlq"
    await load_library(client)
    entry_id, fields = await read_one(client, stream)
    same_slot = key_slot(stream.encode()) == key_slot(dlq.encode())
    keys = [dlq, dedupe_key(dlq), trail_records_key(dlq)] + ([stream] if same_slot else [])
    args = [GROUP, entry_id, "RuntimeError: boom", 5, *sum(fields.items(), ())]
    [first, acked] = await fcall(client, DEAD_LETTER, keys, args)
    assert first and acked == (1 if same_slot else 0)
    # the crash: no XACK was sent (where it is separate); the process comes back and repeats
    [again, _] = await fcall(client, DEAD_LETTER, keys, args)
    assert again == b""
    await client.xack(stream, GROUP, entry_id)
    assert (await client.xpending(stream, GROUP))["pending"] == 0
    [(dlq_id, letter)] = await client.xrange(dlq)
    assert dlq_id == first
    assert letter[b"original_id"] == entry_id.encode() and letter[b"attempts"] == b"5"
    assert {k: letter[k.encode()] for k in fields} == fields  # the original fields as read


async def test_the_runtime_and_relay_dlq_replay_use_the_same_calls(client: Redis) -> None:
    """Python's dead_letter/replay are the FCALLs: the marks a worker in another language
    writes are the ones Python honours, both ways."""
    stream, dlq = "anyformat:events", "anyformat:events:dlq"
    entry_id, fields = await read_one(client, stream)
    await dead_letter(client, stream, GROUP, entry_id, fields, error="boom", attempts=3)
    await dead_letter(client, stream, GROUP, entry_id, fields, error="boom", attempts=3)
    assert await client.xlen(dlq) == 1  # the second move found the first one's mark
    [letter] = await list_dead(client, stream, 10)
    # another language's worker replays it first (and crashes before its XDEL)
    other = await fcall(client, REPLAY, [stream, replay_marks_key(stream), replays_key(stream)],
                        [letter.dlq_id, *sum(letter.fields.items(), ())])  # fmt: skip
    assert other
    assert await replay(client, stream, letter.dlq_id) == "finished"  # no second append
    assert await client.xlen(dlq) == 0
    entries = await client.xrange(stream)
    assert len(entries) == 2 and entries[-1][1][b"replayed_from"] == letter.dlq_id.encode()
    assert b"error" not in entries[-1][1]


async def test_an_entry_replayed_then_dead_lettered_again_names_only_its_latest_replay(
    client: Redis,
) -> None:
    stream = "{t}:events"
    entry_id, fields = await read_one(client, stream)
    await dead_letter(client, stream, GROUP, entry_id, fields, error="x", attempts=1)
    [first] = await list_dead(client, stream, 10)
    assert await replay(client, stream, first.dlq_id) == "replayed"
    [[_, [(again_id, raw)]]] = await client.xreadgroup(GROUP, "c", {stream: ">"}, count=1)
    again = {k.decode(): v for k, v in raw.items()}
    await dead_letter(client, stream, GROUP, again_id.decode(), again, error="y", attempts=1)
    [second] = await list_dead(client, stream, 10)
    assert second.fields["replayed_from"] == first.dlq_id.encode()
    assert await replay(client, stream, second.dlq_id) == "replayed"
    [*_, (_, last)] = await client.xrange(stream)
    assert list(last).count(b"replayed_from") == 1
    assert last[b"replayed_from"] == second.dlq_id.encode()


@pytest.mark.parametrize("where", ["redis-server", "cluster"])
async def test_a_relay_starting_loads_the_library_on_every_master(
    where: str, redis_url: str, start_relay: StartRelay, request: pytest.FixtureRequest
) -> None:
    if where == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        client = cast(Redis, RedisCluster.from_url(url, socket_timeout=5))
        overrides: dict[str, Any] = {"RELAY_REDIS_CLUSTER": True}
    else:
        url, client, overrides = redis_url, Redis.from_url(redis_url, socket_timeout=5), {}
    try:
        await _each_master(client, "FUNCTION", "FLUSH")
        with pytest.raises(ResponseError, match=r"(?i)function not found"):
            await _each_master(client, "FCALL_RO", "relay_v1_revision", 0)
        await start_relay(url, **overrides)
        assert set(await revisions(client)) == {REVISION}
    finally:
        await client.aclose()


async def test_a_fresh_cluster_client_loads_on_every_master(redis_cluster: Any) -> None:
    """Before its first command a cluster client knows no nodes: loading must not be a
    loop over nothing."""
    setup = cast(Redis, RedisCluster.from_url(redis_cluster.url, socket_timeout=5))
    await _each_master(setup, "FUNCTION", "FLUSH")
    await setup.aclose()
    fresh = cast(Redis, RedisCluster.from_url(redis_cluster.url, socket_timeout=5))
    try:
        await load_library(fresh)
        assert await revisions(fresh) == [REVISION] * 3
    finally:
        await fresh.aclose()
