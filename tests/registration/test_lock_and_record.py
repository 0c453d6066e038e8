"""The registration lock and the stored record, on a real redis-server."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from redis.asyncio import Redis

from relay.redis.keys import registration_key
from relay.registration.lock import RedisLock
from relay.registration.record import (
    RegistrationRecord,
    RetiringSubscription,
    SecretCodec,
    SecretUnreadable,
    load_record,
    save_record,
)
from tests.registration.conftest import PUBLIC_URL
from tests.support.signing import OTHER_SECRET, SECRET
from tests.support.waiting import wait_for


async def test_one_holder_at_a_time_and_only_the_holder_releases(client: Redis) -> None:
    first, second = RedisLock(client, "lock", ttl=5), RedisLock(client, "lock", ttl=5)
    assert await first.acquire()
    assert not await second.acquire()
    assert not await second.release()  # not the holder: nothing happens
    assert not await second.extend()
    assert await first.release()
    assert await second.acquire()


async def test_a_dead_holders_lock_expires(client: Redis) -> None:
    dead = RedisLock(client, "lock", ttl=0.3)
    assert await dead.acquire()
    assert not await RedisLock(client, "lock", ttl=0.3).acquire()  # held until it expires
    await wait_for(lambda: _gone(client, "lock"), what="the dead holder's lock expired")
    assert await RedisLock(client, "lock", ttl=0.3).acquire()


async def test_a_kept_lock_outlives_its_ttl_and_is_released_at_the_end(client: Redis) -> None:
    alive = RedisLock(client, "lock", ttl=0.3)
    assert await alive.acquire()
    extended = 0
    extend = alive.extend

    async def counted() -> bool:
        nonlocal extended
        done = await extend()
        extended += done
        return done

    alive.extend = counted  # type: ignore[method-assign]

    async def outlived_its_ttl() -> bool:
        assert not await RedisLock(client, "lock", ttl=0.3).acquire()  # held throughout
        return extended >= 4  # four renewals a third of the TTL apart: past the first TTL

    async with alive.kept():
        await wait_for(outlived_its_ttl, what="four extensions of the kept lock")
    assert await client.get("lock") is None  # released at the end


async def _gone(client: Redis, key: str) -> bool:
    return not await client.exists(key)


def record() -> RegistrationRecord:
    return RegistrationRecord(
        id="wh_2",
        url=PUBLIC_URL,
        events=["extraction.completed"],
        secret=SecretStr(SECRET),
        created_at="2024-03-24T12:00:00Z",
        retiring=[RetiringSubscription(id="wh_1", secret=SecretStr(OTHER_SECRET))],
    )


async def test_the_record_round_trips_in_clear_by_default(client: Redis) -> None:
    await save_record(client, "anyformat", record())
    raw = await client.get(registration_key("anyformat", PUBLIC_URL))
    assert SECRET.encode() in raw
    loaded = await load_record(client, "anyformat", PUBLIC_URL)
    assert loaded is not None and loaded.secrets == [SECRET, OTHER_SECRET]


async def test_with_a_key_secrets_are_encrypted_at_rest(client: Redis) -> None:
    codec = SecretCodec(SecretStr(Fernet.generate_key().decode()))
    await save_record(client, "anyformat", record(), codec)
    raw = await client.get(registration_key("anyformat", PUBLIC_URL))
    assert SECRET.encode() not in raw and OTHER_SECRET.encode() not in raw
    assert raw.count(b"enc:v1:") == 2
    loaded = await load_record(client, "anyformat", PUBLIC_URL, codec)
    assert loaded is not None and loaded.secrets == [SECRET, OTHER_SECRET]


async def test_a_wrong_or_missing_key_is_a_clear_error(client: Redis) -> None:
    await save_record(
        client, "anyformat", record(), SecretCodec(SecretStr(Fernet.generate_key().decode()))
    )
    wrong = SecretCodec(SecretStr(Fernet.generate_key().decode()))
    with pytest.raises(SecretUnreadable, match="does not decrypt"):
        await load_record(client, "anyformat", PUBLIC_URL, wrong)
    with pytest.raises(SecretUnreadable, match="RELAY_SECRET_ENCRYPTION_KEY is unset"):
        await load_record(client, "anyformat", PUBLIC_URL)


async def test_a_clear_record_stays_readable_once_encryption_is_on(client: Redis) -> None:
    await save_record(client, "anyformat", record())
    codec = SecretCodec(SecretStr(Fernet.generate_key().decode()))
    loaded = await load_record(client, "anyformat", PUBLIC_URL, codec)
    assert loaded is not None and loaded.secrets[0] == SECRET


def test_the_record_never_shows_its_secret_in_repr() -> None:
    assert SECRET not in repr(record()) and SECRET not in str(record())
