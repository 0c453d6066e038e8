"""One asyncio client on a real single Redis or a real Cluster, for tests that must hold on
both (the operator's reads name one key per call: an event's keys lie in several slots)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as AsyncRedisCluster

BACKENDS = ["redis", "cluster"]


async def backend_client(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """Use as ``@pytest.fixture(params=BACKENDS)`` body: a flushed database of either kind."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        client = Redis.from_url(url)
    else:
        cluster = request.getfixturevalue("redis_cluster")
        cluster.wait_ok()
        cluster.client().flushall()
        client = cast(Redis, AsyncRedisCluster.from_url(cluster.url))
    yield client
    await client.aclose()
