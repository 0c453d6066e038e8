"""The one Redis client a process uses, built from the settings."""

from __future__ import annotations

from redis.asyncio import Redis

from relay import __version__
from relay.settings import Settings


def redis_from_settings(settings: Settings) -> Redis:
    """Binary-safe client (payloads stay bytes) with bounded waits on a sick server.

    The timeout bounds how long a delivery can hang on Redis before it is answered 503,
    so it must stay below ``RELAY_SHUTDOWN_TIMEOUT`` for shutdown to drain cleanly.
    """
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        client_name=f"anyformat-relay-{__version__}".replace(" ", "_"),
        decode_responses=False,
    )
