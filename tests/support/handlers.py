"""Handlers for worker processes started by the tests (``relay worker --handler …``).

They record each attempt in the Redis list ``handled`` of ``TEST_REDIS_URL`` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from redis.asyncio import Redis

from relay import Event

_redis: Redis | None = None


async def _record(event: Event, phase: str) -> None:
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["TEST_REDIS_URL"])
    document = {
        "id": event.id,
        "entry_id": event.entry_id,
        "attempt": event.attempt,
        "phase": phase,
        "pid": os.getpid(),
        "at": time.time(),
    }
    await _redis.rpush("handled", json.dumps(document))


async def record(event: Event) -> None:
    await _record(event, "done")


async def slow(event: Event) -> None:
    """Announce the start, take HANDLER_SECONDS, then record completion."""
    await _record(event, "started")
    await asyncio.sleep(float(os.environ.get("HANDLER_SECONDS", "2")))
    await _record(event, "done")


def not_async(event: Event) -> None:
    """A plain function: refused as a handler."""


async def chaos(event: Event) -> None:
    """Poison for extraction ids ending in "-poison"; otherwise a short job."""
    if event.extraction_id.endswith("-poison"):
        raise ValueError("poison entry")
    await asyncio.sleep(float(os.environ.get("HANDLER_SECONDS", "0.02")))
    await _record(event, "done")


async def failing_while_flagged(event: Event) -> None:
    """Fails (so dead-letters after the last attempt) while the key ``fail`` exists in
    ``TEST_REDIS_URL``; records a done attempt once it is gone."""
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["TEST_REDIS_URL"])
    if await _redis.exists("fail"):
        raise RuntimeError(f"<b>flagged</b> failure of {event.id}")
    await _record(event, "done")
