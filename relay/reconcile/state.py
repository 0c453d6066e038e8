"""What the relays share in Redis about reconciliation: one hash per stream prefix.

``heartbeat``   the latest time any serving relay was receiving (Unix ms)
``gap_since``   a gap waiting to be reconciled: from here (ms)...
``gap_found``   ...to at least here (ms), when a relay found it
``last_since`` / ``last_until`` / ``last_done``   the last successful sweep's window, and
                when it ended (ms)
``epoch``       when the first relay of this Redis started: periodic sweeps never look
                further back (a new installation does not replay the hour before it)

Each change is one Lua step (``reconcile_beat.lua``, ``reconcile_finish.lua``) on the one
key (a single slot on Redis Cluster), so relays that beat, find gaps and finish sweeps at
once never lose one another's updates. Beside it, the last sweep's report (JSON, whatever
its outcome, from whichever relay ran it) is what the operator API shows on any replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from relay.redis.client import Redis
from relay.redis.keys import reconcile_last_sweep_key, reconcile_state_key
from relay.redis.scripts import RECONCILE_BEAT, RECONCILE_FINISH, run


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
        self.key = reconcile_state_key(prefix)
        self.last_sweep_key = reconcile_last_sweep_key(prefix)

    async def beat(self, now: float, threshold: float, margin: float) -> float | None:
        """Record that this relay is receiving at ``now``. When the latest heartbeat before
        it is older than ``threshold`` seconds, nobody was receiving meanwhile: a gap from
        ``margin`` seconds before it is recorded for the next sweep, and the old heartbeat
        returned."""
        old = await run(
            self._redis, RECONCILE_BEAT, [self.key], [_ms(now), _ms(threshold), _ms(margin)]
        )
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
        args = [_ms(since), _ms(until), _ms(done)]
        return bool(await run(self._redis, RECONCILE_FINISH, [self.key], args))

    async def record_sweep(self, report: dict[str, Any]) -> None:
        """Keep the last sweep's report (replaced as a whole)."""
        await self._redis.set(self.last_sweep_key, orjson.dumps(report))

    async def last_sweep(self) -> dict[str, Any] | None:
        raw = await self._redis.get(self.last_sweep_key)
        report: dict[str, Any] | None = orjson.loads(raw) if raw else None
        return report


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
