"""The one Redis client a process uses, built from the settings: a single server, a master
found through Redis Sentinel, or a Redis Cluster. The relay, the workers and every CLI
command get theirs here, so all three topologies work everywhere alike."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import structlog
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel

from relay.redis.errors import (
    REDIS_DOWN,
    RedisClusterException,
    RedisConnectionError,
    RedisTimeoutError,
    ResponseError,
)
from relay.settings import Settings, sentinel_address
from relay.version import __version__

__all__ = [
    "REDIS_DOWN",
    "Redis",
    "RedisCluster",
    "RedisTooOld",
    "answers",
    "check_version",
    "redis_from_settings",
    "wait_for_version",
]

MINIMUM_VERSION = (7, 0)  # XAUTOCLAIM's reply with deleted ids (workers); Lua on 7's terms

log = structlog.get_logger("relay.redis")


def redis_from_settings(settings: Settings) -> Redis:
    """Binary-safe client (payloads stay bytes) with bounded waits on a sick server.

    The timeout bounds how long a delivery can hang on Redis before it is answered 503,
    so it must stay below ``RELAY_SHUTDOWN_TIMEOUT`` for shutdown to drain cleanly.
    """
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        "client_name": f"anyformat-relay-{__version__}".replace(" ", "_"),
        "decode_responses": False,
    }
    if settings.redis_cluster:
        # The cluster client speaks the same command API; the places that need to know
        # (the fan-out's batching) check for it. Commands route by key slot, and every
        # script of the relay touches keys of a single slot.
        return cast(Redis, RedisCluster.from_url(settings.redis_url, **options))
    if settings.redis_sentinels:
        return _sentinel_master(settings, options)
    return Redis.from_url(settings.redis_url, **options)


class SentinelMaster(Redis):
    """The master's client; closing it also closes the connections to the sentinels."""

    sentinels: Sentinel

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        await self.sentinels.aclose()


def _sentinel_master(settings: Settings, options: dict[str, Any]) -> Redis:
    """A client of whichever server the sentinels name master, re-asked on every new
    connection: after a failover, the connections that broke reconnect to the promoted
    replica, and a demoted master's ``READONLY`` closes the connection that met it (redis-py's
    ``SentinelManagedConnection``), so no restart is needed.

    ``RELAY_REDIS_URL`` still gives the master's credentials, database and TLS; its host and
    port are replaced by the sentinels' answer.
    """
    url = parse_url(settings.redis_url)
    tls = url.pop("connection_class", None) is SSLConnection
    url.pop("host", None)
    url.pop("port", None)
    password = settings.redis_sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2
        [sentinel_address(address) for address in settings.redis_sentinels],
        sentinel_kwargs={
            "socket_timeout": settings.redis_timeout,
            "socket_connect_timeout": settings.redis_timeout,
            "password": password.get_secret_value() if password is not None else None,
        },
        **url,
        **options,
    )
    master = cast(
        SentinelMaster,
        sentinel.master_for(settings.redis_sentinel_master, SentinelMaster, ssl=tls),
    )
    master.sentinels = sentinel
    return master


class RedisTooOld(Exception):
    """The server is older than the relay needs; the message says which and why."""


async def check_version(redis: Redis) -> str:
    """The server's version (every node's, on a Cluster), or :class:`RedisTooOld`.

    One ``INFO`` at start-up, never per delivery. A server that has no ``INFO`` (the
    embedded server of ``relay dev``) passes as ``unknown``; other errors are raised.
    """
    try:
        if isinstance(redis, RedisCluster):
            cluster = cast(RedisCluster, redis)
            await cluster.initialize()  # learn the nodes (a no-op once known)
            infos = [
                await cluster.execute_command("INFO", "server", target_nodes=node)
                for node in cluster.get_nodes()
            ]
        else:
            infos = [await redis.info("server")]
    except ResponseError as exc:
        log.warning("redis_version_unknown", error=str(exc)[:200])
        return "unknown"
    versions = [str(info["redis_version"]) for info in infos]
    for version in versions:
        if _parse(version) < MINIMUM_VERSION:
            raise RedisTooOld(
                f"Redis {version} is too old: the relay needs Redis "
                f"{'.'.join(map(str, MINIMUM_VERSION))} or newer (XAUTOCLAIM's reply format "
                "and the scripts' semantics); upgrade the server"
            )
    return min(versions, key=_parse)


async def wait_for_version(redis: Redis, *, retry_every: float = 1.0) -> str:
    """:func:`check_version`, waiting for Redis to answer first (it may start after us)."""
    warned = False
    while True:
        try:
            return await check_version(redis)
        except (RedisConnectionError, RedisTimeoutError, RedisClusterException) as exc:
            if not warned:
                log.warning("redis_unavailable_at_start", error=type(exc).__name__)
                warned = True
            await asyncio.sleep(retry_every)


def _parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def answers(url: str, *, timeout: float = 0.5) -> bool:
    """Whether a Redis answers ``PING`` at ``url`` (blocking: for a command starting up)."""
    import redis as sync_redis

    try:
        return bool(sync_redis.Redis.from_url(url, socket_connect_timeout=timeout).ping())
    except (sync_redis.RedisError, OSError):
        return False
