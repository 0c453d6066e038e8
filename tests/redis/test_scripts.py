"""The script registry: every script loads, a call survives a lost script cache, and a
round trip is repeated once (not never, not twice) when it met ``NOSCRIPT``."""

from __future__ import annotations

import redis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import NoScriptError, ResponseError

from relay.redis.resp import encode_command, finish
from relay.redis.scripts import (
    LOCK_EXTEND,
    LOCK_RELEASE,
    SCRIPTS,
    command,
    encoded_head,
    load,
    reloading,
    run,
)


def test_every_script_compiles_on_a_real_redis(redis_sync: redis.Redis) -> None:
    for script in SCRIPTS:
        assert redis_sync.script_load(script.source) == script.sha, script.name
    assert redis_sync.script_exists(*(script.sha for script in SCRIPTS)) == [True] * len(SCRIPTS)


async def test_a_call_after_the_script_cache_was_flushed_loads_it_and_answers(
    client: Redis, redis_sync: redis.Redis
) -> None:
    redis_sync.set("lock", "mine")
    redis_sync.script_flush()
    assert redis_sync.script_exists(LOCK_EXTEND.sha) == [False]
    assert await run(client, LOCK_EXTEND, ["lock"], ["mine", 60_000]) == 1
    assert redis_sync.script_exists(LOCK_EXTEND.sha) == [True]
    assert 0 < redis_sync.pttl("lock") <= 60_000
    assert await run(client, LOCK_EXTEND, ["lock"], ["theirs", 60_000]) == 0  # not ours


async def test_an_error_reply_other_than_noscript_is_raised_as_it_is(
    client: Redis, redis_sync: redis.Redis
) -> None:
    redis_sync.hset("lock", "a", "b")  # GET on a hash: WRONGTYPE inside the script
    await load(client, LOCK_RELEASE)
    try:
        await run(client, LOCK_RELEASE, ["lock"], ["mine"])
    except ResponseError as exc:
        assert "WRONGTYPE" in str(exc) and not isinstance(exc, NoScriptError)
    else:
        raise AssertionError("the script's error was not raised")


async def test_a_round_trip_that_met_noscript_runs_once_more_after_the_load(
    client: Redis, redis_sync: redis.Redis
) -> None:
    redis_sync.set("lock", "mine")
    redis_sync.script_flush()
    trips = 0

    async def round_trip() -> list[object]:
        nonlocal trips
        trips += 1
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*command(LOCK_EXTEND, ["lock"], ["mine", 60_000]))
            pipe.get("lock")
            return list(await pipe.execute(raise_on_error=False))

    assert await reloading(client, LOCK_EXTEND, round_trip) == [1, b"mine"]
    assert trips == 2
    trips = 0
    assert await reloading(client, LOCK_EXTEND, round_trip) == [1, b"mine"]
    assert trips == 1  # loaded now: no second trip


def test_the_hand_encoded_call_is_the_command_redis_py_would_send() -> None:
    keys, args = ["s:a", "relay:dedupe:{s:a}:s:a"], [b"60000", b"0", b"1", b"msg_1", b"id"]
    head, count = encoded_head(LOCK_EXTEND, keys)
    packed = b"".join(Connection().pack_command(*command(LOCK_EXTEND, keys, args)))
    assert finish(head, count, args) == packed
    assert encode_command(command(LOCK_EXTEND, keys, args)) == packed
