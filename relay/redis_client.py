"""The one Redis client a process uses, built from the settings."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from relay import __version__
from relay.settings import Settings

# Redis unreachable, whichever client: the cluster client reports a cluster it cannot reach
# at all with an exception outside RedisError.
REDIS_DOWN = (RedisError, RedisClusterException)


def redis_from_settings(settings: Settings) -> Redis:
    """Binary-safe client (payloads stay bytes) with bounded waits on a sick server.

    The timeout bounds how long a delivery can hang on Redis before it is answered 503,
    so it must stay below ``RELAY_SHUTDOWN_TIMEOUT`` for shutdown to drain cleanly.
    """
    if settings.redis_cluster:
        # The cluster client speaks the same command API; the places that need to know
        # (the fan-out's batching) check for it. Commands route by key slot, and every
        # script of the relay touches keys of a single slot.
        cluster = RedisCluster.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            client_name=f"anyformat-relay-{__version__}".replace(" ", "_"),
            decode_responses=False,
        )
        return cast(Redis, cluster)
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        client_name=f"anyformat-relay-{__version__}".replace(" ", "_"),
        decode_responses=False,
    )
