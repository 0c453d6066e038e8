"""What the relay needs to know of a Redis Cluster's topology: whether the client is one,
the slot of a key, and the master serving it. redis-py's cluster internals stay here."""

from __future__ import annotations

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot as _key_slot
from redis.exceptions import RedisClusterException, RedisError

__all__ = ["ClusterNode", "RedisCluster", "is_cluster", "key_slot", "owner"]


def is_cluster(redis: Redis) -> bool:
    """Check once and keep the answer: isinstance against the cluster client's protocol
    bases is slow."""
    return isinstance(redis, RedisCluster)


def key_slot(key: str) -> int:
    """The hash slot of ``key`` (its hash tag's, when it has one)."""
    return _key_slot(key.encode())


def owner(cluster: RedisCluster, key: str) -> ClusterNode:
    """The master serving ``key``'s slot, as the client knows it now."""
    try:
        node = cluster.get_node_from_key(key)
    except RedisClusterException as exc:  # not a RedisError: keep it a 503
        raise RedisError(str(exc)) from None
    if node is None:
        raise RedisError(f"no known node serves the slot of {key!r}")
    return node
