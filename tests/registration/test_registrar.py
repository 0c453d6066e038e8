"""Exactly one subscription per URL: the registrar against the fake API and real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from relay.redis.keys import registration_key
from relay.registration import registrar as registrar_module
from relay.registration.client import AnyFormatClient, ApiKeyRejected, ApiValidationError
from relay.registration.keeper import RegistrationKeeper, RegistrationMetrics
from relay.registration.lock import LockLost
from relay.registration.record import RegistrationRecord, load_record
from relay.registration.registrar import SAVE_ATTEMPTS
from tests.registration.conftest import EVENTS, PUBLIC_URL, registrar
from tests.support.fake_anyformat import FakeAnyFormat
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

FOREIGN = "https://someone-else.example.test/hook"
RECORD_KEY = registration_key("anyformat", PUBLIC_URL)


async def stored(client: Redis):  # type: ignore[no-untyped-def]
    return await load_record(client, "anyformat", PUBLIC_URL)


async def test_a_first_start_creates_one_subscription_and_stores_its_secret(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    record = await registrar(client, api_client).ensure()
    [webhook] = fake_api.for_url(PUBLIC_URL)
    assert record.id == webhook["id"] and record.events == EVENTS
    assert record.secret.get_secret_value() == fake_api.secrets[webhook["id"]]
    assert (await stored(client)) == record
    assert fake_api.created()[0].body == {"url": PUBLIC_URL, "events": EVENTS}


async def test_twenty_restarts_reuse_the_one_subscription(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    ids = {(await registrar(client, api_client).ensure()).id for _ in range(20)}
    assert len(ids) == 1
    assert len(fake_api.created()) == 1 and len(fake_api.for_url(PUBLIC_URL)) == 1


async def test_replicas_starting_together_make_one_create_call(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    fake_api.delay = 0.2  # a slow API widens the race
    records = await asyncio.gather(*(registrar(client, api_client).ensure() for _ in range(5)))
    assert len({r.id for r in records}) == 1
    assert len(fake_api.created()) == 1


async def test_a_subscription_deleted_upstream_is_replaced(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    first = await registrar(client, api_client).ensure()
    fake_api.webhooks.pop(first.id)
    second = await registrar(client, api_client).ensure()
    assert second.id != first.id and (await stored(client)) == second
    assert [w["id"] for w in fake_api.for_url(PUBLIC_URL)] == [second.id]


async def test_an_inactive_subscription_is_replaced_and_deleted_at_once(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    first = await registrar(client, api_client).ensure()
    fake_api.webhooks[first.id]["is_active"] = False
    second = await registrar(client, api_client).ensure()
    assert second.id != first.id and second.retiring == []
    assert fake_api.deleted() == [first.id]


async def test_an_active_predecessor_retires_with_a_grace_period_instead_of_being_deleted(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    """Subscribed to fewer events than we now want, but active: it may still hold retries
    of deliveries, so its secret stays accepted until the grace period is over."""
    first = await registrar(client, api_client).ensure()
    fake_api.webhooks[first.id]["events"] = ["extraction.completed"]
    reg = registrar(client, api_client, retire_grace=60)
    second = await reg.ensure()
    assert second.id != first.id and fake_api.deleted() == []
    [old] = second.retiring
    assert old.id == first.id and old.secret == first.secret
    assert old.delete_after is not None and 59 < old.delete_after - time.time() <= 60
    stored_now = await stored(client)
    assert stored_now is not None and stored_now.secrets[1] == first.secret.get_secret_value()
    await reg.retire_due()
    assert fake_api.deleted() == []  # not due yet
    again = await registrar(client, api_client).ensure()  # a restart meanwhile reuses both
    assert again == stored_now and len(fake_api.created()) == 2


async def test_a_retiring_predecessor_is_deleted_exactly_when_its_grace_period_is_over(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    first = await registrar(client, api_client).ensure()
    fake_api.webhooks[first.id]["events"] = ["extraction.completed"]
    reg = registrar(client, api_client, retire_grace=0)
    second = await reg.ensure()
    [old] = second.retiring
    assert old.delete_after is not None and old.delete_after <= time.time()  # the edge: due
    await reg.retire_due()
    assert fake_api.deleted() == [first.id]
    after = await stored(client)
    assert after is not None and after.retiring == [] and after.id == second.id


async def test_lost_redis_with_three_subscriptions_for_our_url_leaves_exactly_one(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    for _ in range(3):
        fake_api.add(PUBLIC_URL)
    foreign = fake_api.add(FOREIGN)
    record = await registrar(client, api_client).ensure()
    assert [w["id"] for w in fake_api.for_url(PUBLIC_URL)] == [record.id]
    assert foreign in fake_api.webhooks
    assert foreign not in fake_api.deleted()


async def test_rate_limits_and_server_errors_are_retried(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat, fast_retries: list[float]
) -> None:
    fake_api.fail_next(429, times=2, retry_after="2")
    fake_api.fail_next(500, times=3)
    record = await registrar(client, api_client).ensure()
    assert fast_retries[:2] == [2, 2] and len(fast_retries) == 5
    assert len(fake_api.created()) == 1 and record.id in fake_api.webhooks


async def test_a_rejected_key_and_a_refused_request_are_final(
    client: Redis, fake_api: FakeAnyFormat, api_client: AnyFormatClient
) -> None:
    from pydantic import SecretStr

    async with AnyFormatClient(fake_api.url, SecretStr("afk_wrong")) as wrong:
        with pytest.raises(ApiKeyRejected):
            await registrar(client, wrong).ensure()
    bad_events = registrar(client, api_client)
    bad_events.events = ["extraction.exploded"]
    with pytest.raises(ApiValidationError, match="Unknown event"):
        await bad_events.ensure()
    assert fake_api.created() == [] and await stored(client) is None


async def test_a_replica_waiting_on_a_dead_holder_takes_over(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    from relay.registration.lock import RedisLock

    waiting = registrar(client, api_client, lock_ttl=0.3)
    assert await RedisLock(client, waiting.lock_key, ttl=0.3).acquire()  # holder then dies
    record = await asyncio.wait_for(waiting.ensure(), 5)
    assert len(fake_api.created()) == 1 and record.id in fake_api.webhooks


class Clock:
    """The registrar's wall clock, moved by the test: a grace period ends when it says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


async def test_rotation_keeps_both_secrets_until_the_grace_period_ends(
    client: Redis,
    api_client: AnyFormatClient,
    fake_api: FakeAnyFormat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(registrar_module, "time", clock)
    reg = registrar(client, api_client)
    old = await reg.ensure()
    new, old_id = await reg.rotate(grace=60)
    assert old_id == old.id and new.id != old.id
    both = await stored(client)
    assert both is not None and both.secrets == [new.secret.get_secret_value(),
                                                 old.secret.get_secret_value()]  # fmt: skip
    clock.now = 1_700_000_059.999  # just before the end of the grace period
    await reg.retire_due()
    assert old.id in fake_api.webhooks
    clock.now = 1_700_000_060.0  # its end, exactly
    await reg.retire_due()
    assert old.id not in fake_api.webhooks
    after = await stored(client)
    assert after is not None and after.retiring == [] and after.id == new.id
    assert [w["id"] for w in fake_api.for_url(PUBLIC_URL)] == [new.id]


async def test_rotation_now_deletes_the_old_subscription_at_once(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    reg = registrar(client, api_client)
    old = await reg.ensure()
    new, _ = await reg.rotate(grace=None)
    assert old.id not in fake_api.webhooks and new.id in fake_api.webhooks
    record = await stored(client)
    assert record is not None and record.retiring == []


async def test_a_restart_during_a_rotation_keeps_the_retiring_subscription(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    reg = registrar(client, api_client)
    old = await reg.ensure()
    await reg.rotate(grace=60)
    await registrar(client, api_client).ensure()
    assert old.id in fake_api.webhooks


async def test_unregister_deletes_our_subscriptions_and_the_record(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    foreign = fake_api.add(FOREIGN)
    reg = registrar(client, api_client)
    await reg.ensure()
    await reg.rotate(grace=60)
    deleted = await reg.unregister()
    assert len(deleted) == 2 and list(fake_api.webhooks) == [foreign]
    assert await stored(client) is None
    assert await reg.unregister() == []


async def test_maintenance_replaces_a_subscription_deleted_while_serving(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    replaced: asyncio.Queue[RegistrationRecord | None] = asyncio.Queue()
    reg = registrar(client, api_client, on_record=replaced.put_nowait)
    keeper = RegistrationKeeper(
        reg,
        RegistrationMetrics(CollectorRegistry()),
        can_serve=lambda: True,
        recheck_interval=0.1,
        retire_interval=0.05,
    )
    task = asyncio.create_task(keeper.run())
    first = await asyncio.wait_for(replaced.get(), 5)  # the first creation
    assert first is not None
    fake_api.webhooks.pop(first.id)
    while (second := await asyncio.wait_for(replaced.get(), 5)) == first:
        pass  # the keeper hands the record over again after each check
    task.cancel()
    assert second is not None and second.id != first.id


# --- the edges of creation -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["reset", "error", "timeout"])
async def test_a_create_whose_answer_was_lost_leaves_exactly_one_subscription(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat, how: str
) -> None:
    """The lost create took effect; before creating again the registrar lists and deletes
    the same-URL subscription it holds no secret for. Others' URLs are never touched."""
    foreign = fake_api.add(FOREIGN)
    fake_api.lose_next_create(how)
    record = await registrar(client, api_client).ensure()
    [lost, kept] = [c for c in fake_api.calls if c.method == "POST"]
    assert lost.lost == how and kept.status == 201 and kept.lost is None
    [orphan] = fake_api.deleted()  # the one the lost answer would have named
    assert orphan != record.id and orphan not in fake_api.webhooks
    assert [w["id"] for w in fake_api.for_url(PUBLIC_URL)] == [record.id]
    methods = [c.method for c in fake_api.calls]
    assert methods == ["GET", "POST", "GET", "DELETE", "POST"]  # list before creating again
    assert foreign in fake_api.webhooks and await stored(client) == record


async def test_a_retried_create_keeps_the_subscriptions_whose_secret_we_hold(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    """During a rotation the current subscription is ours: only the lost one goes."""
    reg = registrar(client, api_client)
    current = await reg.ensure()
    fake_api.lose_next_create("reset")
    new, old_id = await reg.rotate(grace=60)
    assert old_id == current.id and len(fake_api.deleted()) == 1
    assert {w["id"] for w in fake_api.for_url(PUBLIC_URL)} == {current.id, new.id}


async def test_a_listed_url_spelled_differently_is_still_ours(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    first = await registrar(client, api_client).ensure()
    fake_api.webhooks[first.id]["url"] = (
        "HTTPS://Relay.AnyFormat-Relay-Tests.NET:443/webhooks/anyformat"
    )
    orphan = fake_api.add("https://RELAY.anyformat-relay-tests.net/webhooks/anyformat")
    other_path = fake_api.add(
        "https://relay.anyformat-relay-tests.net/webhooks/AnyFormat"
    )  # paths differ
    other_port = fake_api.add("https://relay.anyformat-relay-tests.net:8443/webhooks/anyformat")
    again = await registrar(client, api_client).ensure()
    assert again.id == first.id and len(fake_api.created()) == 1  # reused, not replaced
    assert fake_api.deleted() == [orphan]
    assert other_path in fake_api.webhooks and other_port in fake_api.webhooks


def save_refused(server: RedisServer) -> Redis:
    """A client that may take the lock and read the record but not write it: every save
    fails (NOPERM) until :func:`save_allowed`."""
    server.client().acl_setuser(
        "registrar", enabled=True, passwords=["+pw"], commands=["+@all"],
        keys=["%RW~anyformat:registration:*:lock", "%R~anyformat:registration:*"],
    )  # fmt: skip
    return Redis.from_url(f"redis://registrar:pw@127.0.0.1:{server.port}/0")


def save_allowed(server: RedisServer) -> None:
    server.client().acl_setuser("registrar", enabled=True, keys=["~*"])


async def test_a_subscription_whose_secret_cannot_be_saved_is_deleted(
    own_redis: RedisServer, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    limited = save_refused(own_redis)
    with pytest.raises(NoPermissionError):
        await registrar(limited, api_client).ensure()
    assert len(fake_api.created()) == 1 and len(fake_api.deleted()) == 1
    assert fake_api.for_url(PUBLIC_URL) == []  # nothing left that nobody could verify
    [denied] = own_redis.client().acl_log()  # identical denials are counted in one entry
    assert denied["object"] == RECORD_KEY and denied["count"] == SAVE_ATTEMPTS  # retried
    assert own_redis.client().get(RECORD_KEY) is None
    await limited.aclose()


async def test_a_save_that_fails_then_succeeds_keeps_the_subscription(
    own_redis: RedisServer,
    api_client: AnyFormatClient,
    fake_api: FakeAnyFormat,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relay.registration import client as client_module

    limited = save_refused(own_redis)

    async def repaired_during_the_wait(delay: float) -> None:
        save_allowed(own_redis)  # e.g. Redis failed over while the registrar waited

    monkeypatch.setattr(client_module, "backoff_sleep", repaired_during_the_wait)
    record = await registrar(limited, api_client).ensure()
    [denied] = own_redis.client().acl_log()
    assert denied["object"] == RECORD_KEY and denied["count"] == 1  # failed once, then saved
    assert [w["id"] for w in fake_api.for_url(PUBLIC_URL)] == [record.id]
    assert fake_api.deleted() == [] and len(fake_api.created()) == 1
    assert await load_record(limited, "anyformat", PUBLIC_URL) == record
    await limited.aclose()


async def test_a_holder_whose_lock_was_taken_over_makes_no_further_api_call(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    """The holder waits on the API while its lock expires and another replica takes it:
    when the answer comes, it stops before its next call (the create) and leaves the new
    holder's lock alone."""
    fake_api.hold("GET")
    reg = registrar(client, api_client)
    holder = asyncio.create_task(reg.ensure())
    await wait_for(
        lambda: [c.method for c in fake_api.calls] == ["GET"], what="the holder mid-call"
    )
    assert await client.set(reg.lock_key, "the-new-holder", xx=True, px=30_000)  # taken over
    fake_api.release("GET")
    with pytest.raises(LockLost):
        await asyncio.wait_for(holder, 10)
    assert [c.method for c in fake_api.calls] == ["GET"]  # no create, no delete
    assert await client.get(reg.lock_key) == b"the-new-holder"
    assert await stored(client) is None
