"""The Redis client a worker is given: checked once, at construction."""

from __future__ import annotations

from typing import Any


class DecodingClientError(TypeError):
    """The client decodes replies to ``str``; the runtime reads entries as bytes."""


def require_bytes_client(redis: Any) -> None:
    """Refuse a client made with ``decode_responses=True`` now, with a message that says
    what to do, rather than failing later on the first entry read (payloads are bytes:
    they need not be UTF-8, and decoding each reply would cost every entry)."""
    get_kwargs = getattr(redis, "get_connection_kwargs", None)
    kwargs = get_kwargs() if callable(get_kwargs) else {}
    if kwargs.get("decode_responses"):
        raise DecodingClientError(
            "the worker needs a Redis client that returns bytes: create it without "
            "decode_responses=True (e.g. Redis.from_url(url)), or use "
            "relay.redis.client.redis_from_settings"
        )
