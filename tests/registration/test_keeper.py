"""The keeper: registration never takes down a relay that could serve (in-process, real
Redis, the fake API)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis, RedisCluster

from relay.registration.client import AnyFormatClient, ApiKeyRejected, ApiValidationError
from relay.registration.keeper import RegistrationKeeper, RegistrationMetrics
from relay.registration.record import RegistrationRecord
from tests.registration.conftest import registrar
from tests.support.fake_anyformat import FakeAnyFormat
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for


def keeper(
    client: Redis,
    api: AnyFormatClient,
    registry: CollectorRegistry,
    seen: list[RegistrationRecord | None],
    can_serve: Callable[[], bool] = lambda: False,
    **options: object,
) -> RegistrationKeeper:
    return RegistrationKeeper(
        registrar(client, api, on_record=seen.append, **options),
        RegistrationMetrics(registry),
        can_serve=can_serve,
        recheck_interval=300,
    )


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_rejected_key_with_a_stored_record_serves_with_it_and_recovers(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    stored = await registrar(client, api_client).ensure()
    fake_api.fail_next(401, times=2)  # the key is refused, then accepted again
    registry, seen = CollectorRegistry(), []
    kept = keeper(client, api_client, registry, seen)
    task = asyncio.create_task(kept.run())
    await wait_for(lambda: kept.registered, what="registered")
    task.cancel()
    assert seen[0] == stored  # handed over at the first rejection: serving starts at once
    assert seen[-1] == stored and len(fake_api.created()) == 1  # then reused, not replaced
    assert metric(registry, "relay_registration_failures_total", reason="api_key_rejected") == 2
    assert metric(registry, "relay_registration_api_key_rejected") == 0  # recovered


async def test_a_rejected_key_without_any_secret_stops_the_relay(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    fake_api.fail_next(403)
    registry, seen = CollectorRegistry(), []
    with pytest.raises(ApiKeyRejected, match="HTTP 403"):
        await keeper(client, api_client, registry, seen).run()
    assert seen == [] and fake_api.created() == []


async def test_a_rejected_key_with_a_static_secret_serves(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    fake_api.fail_next(401)
    registry, seen = CollectorRegistry(), []
    kept = keeper(client, api_client, registry, seen, can_serve=lambda: True)
    task = asyncio.create_task(kept.run())
    await wait_for(lambda: kept.registered, what="registered")
    task.cancel()
    assert metric(registry, "relay_registration_failures_total", reason="api_key_rejected") == 1
    assert len(fake_api.created()) == 1


async def test_a_refused_request_at_start_up_stops_the_relay(
    client: Redis, api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    registry, seen = CollectorRegistry(), []
    kept = keeper(client, api_client, registry, seen)
    kept.registrar.events = ["extraction.exploded"]
    with pytest.raises(ApiValidationError, match=r"Unknown event: extraction\.exploded"):
        await kept.run()


@pytest.mark.parametrize("cluster", [False, True])
async def test_unreachable_redis_is_waited_for_never_fatal(
    api_client: AnyFormatClient, fake_api: FakeAnyFormat, cluster: bool
) -> None:
    """Nothing listens at the URL (a single Redis, or a Redis Cluster not up yet: its client
    raises outside RedisError): the keeper keeps retrying and calls no API."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    client = (
        cast(Redis, RedisCluster.from_url(url, socket_connect_timeout=1))
        if cluster
        else Redis.from_url(url, socket_connect_timeout=1)
    )
    registry, seen = CollectorRegistry(), []
    kept = keeper(client, api_client, registry, seen)
    task = asyncio.create_task(kept.run())
    failures = "relay_registration_failures_total"
    await wait_for(
        lambda: (metric(registry, failures, reason="redis_unavailable") or 0) >= 2,
        what="two redis_unavailable failures counted",
    )
    assert not task.done() and fake_api.calls == [] and seen == []
    task.cancel()
    await client.aclose()
