"""A Redis Cluster that cannot be reached on the write path is ``redis_unavailable``.

redis-py's cluster errors (``RedisClusterException`` and its kin) are not ``RedisError``s:
once they escaped as ``503 internal_error``. A cluster of its own: this one is stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import StartRelay
from tests.support.redis_cluster import RedisCluster
from tests.support.signing import event_body, sign


@pytest.fixture
def cluster_without_replicas() -> Iterator[RedisCluster]:
    cluster = RedisCluster(masters=3, replicas=0).start()
    yield cluster
    cluster.close()


async def post(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    body = event_body()
    async with http.post(url, data=body, headers=sign(body)) as response:
        document = await response.json()
        return response.status, document.get("reason") or document["status"]


async def test_a_cluster_gone_answers_redis_unavailable_not_internal_error(
    start_relay: StartRelay, cluster_without_replicas: RedisCluster, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(
        cluster_without_replicas.url, RELAY_REDIS_CLUSTER=True, RELAY_REDIS_TIMEOUT=1
    )
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    assert await post(http, url) == (200, "accepted")  # the cluster serves

    for node in cluster_without_replicas.nodes:
        node.stop()
    answers = [await post(http, url) for _ in range(4)]
    assert answers == [(503, "redis_unavailable")] * 4
