"""The Redis Functions library ``relay_v1`` (``lua/relay_v1.lua``): the dead-letter move and the
replay as one idempotent ``FCALL`` each, the same calls for the Python runtime, ``relay dlq
replay`` and workers in any language (docs/workers.md).

Loading is safe from many processes at once and across versions: ``FUNCTION LOAD`` without
``REPLACE`` either loads the library or finds it there; then the loaded revision is read and
the library replaced only when this one is newer, so an older relay never downgrades it. On
a cluster this is done on every master. A call that finds no library (a new master, a
``FUNCTION FLUSH``) loads it and is made once more, as the script calls do on ``NOSCRIPT``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.resources import files
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ResponseError

from relay.redis.cluster import is_cluster

LIBRARY = files("relay.redis").joinpath("lua", "relay_v1.lua").read_text()
NAME = "relay_v1"
REVISION = int(re.search(r"^local REVISION = (\d+)$", LIBRARY, re.M).group(1))  # type: ignore[union-attr]
DEAD_LETTER = "relay_dead_letter_v1"
REPLAY = "relay_replay_v1"
Arg = str | bytes | int


async def _load_on(redis: Any, **target: Any) -> None:
    try:
        await redis.execute_command("FUNCTION", "LOAD", LIBRARY, **target)
        return
    except ResponseError as exc:
        if "already exists" not in str(exc):
            raise
    # Several relays may do this at once: each replaces only an older revision, and a
    # replace is re-checked, so the newest revision present ends up loaded.
    while int(await redis.execute_command("FCALL_RO", "relay_v1_revision", 0, **target)) < REVISION:
        await redis.execute_command("FUNCTION", "LOAD", "REPLACE", LIBRARY, **target)


async def load_library(redis: Redis) -> None:
    """Load ``relay_v1`` where it is missing or older (on every master of a cluster)."""
    if is_cluster(redis):
        cluster = cast(RedisCluster, redis)
        await cluster.initialize()  # a fresh client knows no nodes before its first command
        for node in cluster.get_primaries():
            await _load_on(cluster, target_nodes=node)
    else:
        await _load_on(redis)


async def fcall(redis: Redis, function: str, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
    """One ``FCALL``; the library is loaded first when this server lacks it."""
    client: Any = redis  # redis-py leaves execute_command untyped
    try:
        return await client.execute_command("FCALL", function, len(keys), *keys, *args)
    except ResponseError as exc:
        if "function not found" not in str(exc).lower():
            raise
    await load_library(redis)
    return await client.execute_command("FCALL", function, len(keys), *keys, *args)
