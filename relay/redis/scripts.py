"""The one registry of the relay's Lua scripts, and the one way they run.

Every script is a file in ``lua/`` and a :class:`Script` here. A call is always ``EVALSHA``;
when Redis has lost its script cache (restart, failover, ``SCRIPT FLUSH``) the reply is
``NOSCRIPT``, and the script is loaded and the call made once more. That is safe for every
script here: each is a single atomic step that either ran or did not, and the ones whose
repetition would matter (the appends) are idempotent by design.

The steps workers in other languages make too (the dead-letter move, the replay) are not
scripts but the Redis Functions library ``lua/relay_v1.lua``, registered and called in
:mod:`relay.redis.functions` (``FCALL``, the library loaded again when a server lacks it).

Single calls go through :func:`run`; pipelines and the ingest batch put :func:`command`
(or :func:`encoded_head`) into their round trip and wrap it in :func:`reloading`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from relay.redis.resp import Arg, Command, as_bytes, encode


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: bytes
    sha: str


def _load(name: str) -> Script:
    source = files("relay.redis").joinpath("lua", f"{name}.lua").read_bytes()
    return Script(name, source, hashlib.sha1(source, usedforsecurity=False).hexdigest())


APPEND_ONCE = _load("append_once")  # idempotent fan-out append (streams.append)
HEALTH = _load("health")  # one stream's health figures (streams.health)
TRIM = _load("trim")  # consumer-aware trimming (streams.trim)
KEEP_CLAIMED = _load("keep_claimed")  # heartbeat of held entries (worker.claims)
RECLAIM = _load("reclaim")  # claim again for a retry (worker.claims)
LOCK_EXTEND = _load("lock_extend")  # compare-and-expire (registration.lock)
LOCK_RELEASE = _load("lock_release")  # compare-and-delete (registration.lock)
RECONCILE_BEAT = _load("reconcile_beat")  # heartbeat, gap detection (reconcile.state)
RECONCILE_FINISH = _load("reconcile_finish")  # a sweep done (reconcile.state)
JOB_FINISH = _load("job_finish")  # an operator job ends unless cancelled (operator.jobs)

SCRIPTS = (
    APPEND_ONCE, HEALTH, TRIM, KEEP_CLAIMED, RECLAIM,
    LOCK_EXTEND, LOCK_RELEASE, RECONCILE_BEAT, RECONCILE_FINISH, JOB_FINISH,
)  # fmt: skip


def command(script: Script, keys: Sequence[Arg], args: Sequence[Arg] = ()) -> Command:
    """The ``EVALSHA`` of one call, for a pipeline (``execute_command``: redis-py refuses
    ``pipe.evalsha()`` on a cluster; the keys, of one slot, route it all the same)."""
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


def encoded_head(script: Script, keys: Sequence[str]) -> tuple[bytes, int]:
    """The fixed part of a call (``EVALSHA``, script, key count, keys) in RESP, and how many
    arguments it holds; :func:`relay.redis.resp.finish` adds the rest."""
    head = [b"EVALSHA", script.sha.encode(), b"%d" % len(keys), *(as_bytes(k) for k in keys)]
    return encode(head), len(head)


async def load(redis: Redis, script: Script) -> None:
    """Load ``script`` (on every master of a cluster)."""
    await redis.script_load(script.source)


async def run(redis: Redis, script: Script, keys: Sequence[Arg], args: Sequence[Arg] = ()) -> Any:
    """One call of ``script``; its reply, or its error raised."""
    try:
        return await redis.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await load(redis, script)
        return await redis.evalsha(script.sha, len(keys), *keys, *args)


async def reloading(
    redis: Redis, script: Script, round_trip: Callable[[], Awaitable[list[object]]]
) -> list[object]:
    """The replies of ``round_trip`` (errors as values), run once more after loading
    ``script`` when any reply is ``NOSCRIPT``: the calls that went through the first time
    run again, which is why only single-step or idempotent scripts go in a round trip."""
    results = await round_trip()
    if any(isinstance(result, NoScriptError) for result in results):
        await load(redis, script)
        results = await round_trip()
    return results
