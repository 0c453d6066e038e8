"""What the relays share in Redis about reconciliation: one hash per stream prefix.

``heartbeat``   the latest time any serving relay was receiving (Unix ms)
``gap_since``   a gap waiting to be reconciled: from here (ms)...
``gap_found``   ...to at least here (ms), when a relay found it
``last_since`` / ``last_until`` / ``last_done``   the last successful sweep's window, and
                when it ended (ms)
``epoch``       when the first relay of this Redis started: periodic sweeps never look
                further back (a new installation does not replay the hour before it)

Beside it, ``{prefix}:reconcile:last_sweep`` holds the last sweep's report (JSON, whatever
its outcome, from whichever relay ran it): what the operator API shows on any replica.

Each change is one Lua step on the one key (a single slot on Redis Cluster), so relays
that beat, find gaps and finish sweeps at once never lose one another's updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

_BEAT = """
local old = tonumber(redis.call('HGET', KEYS[1], 'heartbeat'))
local now = tonumber(ARGV[1])
if not old or now > old then redis.call('HSET', KEYS[1], 'heartbeat', now) end
redis.call('HSETNX', KEYS[1], 'epoch', now)
if old and now - old > tonumber(ARGV[2]) then
  local since = old - tonumber(ARGV[3])
  local pending = tonumber(redis.call('HGET', KEYS[1], 'gap_since'))
  if not pending or since < pending then redis.call('HSET', KEYS[1], 'gap_since', since) end
  local found = tonumber(redis.call('HGET', KEYS[1], 'gap_found'))
  if not found or now > found then redis.call('HSET', KEYS[1], 'gap_found', now) end
  return old
end
return false
"""

_FINISH = """
local since, untl = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'last_since', since, 'last_until', untl, 'last_done', ARGV[3])
local gap_since = tonumber(redis.call('HGET', KEYS[1], 'gap_since'))
local gap_found = tonumber(redis.call('HGET', KEYS[1], 'gap_found'))
if gap_since and gap_since >= since and gap_found and gap_found <= untl then
  redis.call('HDEL', KEYS[1], 'gap_since', 'gap_found')
  return 1
end
return 0
"""


def state_key(prefix: str) -> str:
    return f"{prefix}:reconcile"


def lock_key(prefix: str) -> str:
    return f"{prefix}:reconcile:lock"


def last_sweep_key(prefix: str) -> str:
    return f"{prefix}:reconcile:last_sweep"


@dataclass(frozen=True, slots=True)
class State:
    """The hash, in Unix seconds; ``None`` where nothing was recorded yet."""

    heartbeat: float | None = None
    gap_since: float | None = None
    last_until: float | None = None
    epoch: float | None = None


class SharedState:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self.key = state_key(prefix)
        self.last_sweep_key = last_sweep_key(prefix)
        self._beat = redis.register_script(_BEAT)
        self._finish = redis.register_script(_FINISH)

    async def beat(self, now: float, threshold: float, margin: float) -> float | None:
        """Record that this relay is receiving at ``now``. When the latest heartbeat before
        it is older than ``threshold`` seconds, nobody was receiving meanwhile: a gap from
        ``margin`` seconds before it is recorded for the next sweep, and the old heartbeat
        returned."""
        old = await self._beat(keys=[self.key], args=[_ms(now), _ms(threshold), _ms(margin)])
        return int(old) / 1000 if old else None

    async def read(self) -> State:
        raw: dict[bytes, bytes] = await self._redis.hgetall(self.key)  # type: ignore[assignment]
        values = {key.decode(): int(value) / 1000 for key, value in raw.items()}
        return State(
            heartbeat=values.get("heartbeat"),
            gap_since=values.get("gap_since"),
            last_until=values.get("last_until"),
            epoch=values.get("epoch"),
        )

    async def finish(self, since: float, until: float, done: float) -> bool:
        """Record a successful sweep of ``[since, until]``; a pending gap it covers is
        cleared (one found after the sweep began stays). True when a gap was cleared."""
        return bool(await self._finish(keys=[self.key], args=[_ms(since), _ms(until), _ms(done)]))

    async def record_sweep(self, report: dict[str, Any]) -> None:
        """Keep the last sweep's report (replaced as a whole)."""
        await self._redis.set(self.last_sweep_key, orjson.dumps(report))

    async def last_sweep(self) -> dict[str, Any] | None:
        raw = await self._redis.get(self.last_sweep_key)
        report: dict[str, Any] | None = orjson.loads(raw) if raw else None
        return report


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
