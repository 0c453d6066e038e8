"""Per-stream figures for ``relay stats``: length, groups, consumers, pending, lag, DLQ."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from relay.redis.client import Redis
from relay.redis.errors import ResponseError
from relay.redis.keys import dlq_stream


@dataclass
class GroupStats:
    name: str
    consumers: int
    pending: int
    lag: int | None  # None when Redis cannot tell (entries deleted mid-stream)
    last_delivered_id: str


@dataclass
class StreamStats:
    stream: str
    length: int
    dlq_length: int
    groups: list[GroupStats] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def stream_stats(redis: Redis, stream: str) -> StreamStats:
    length = int(await redis.xlen(stream))
    dlq_length = int(await redis.xlen(dlq_stream(stream)))
    try:
        groups: Any = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        groups = []
    return StreamStats(
        stream=stream,
        length=length,
        dlq_length=dlq_length,
        groups=[
            GroupStats(
                name=_text(group["name"]),
                consumers=int(group["consumers"]),
                pending=int(group["pending"]),
                lag=None if group.get("lag") is None else int(group["lag"]),
                last_delivered_id=_text(group["last-delivered-id"]),
            )
            for group in groups
        ],
    )


async def discover_streams(redis: Redis) -> list[str]:
    """Every stream key except dead-letter streams (they show as their stream's DLQ)."""
    found = []
    async for key in redis.scan_iter(_type="stream", count=1000):
        name = _text(key)
        if not name.endswith(":dlq"):
            found.append(name)
    return sorted(found)
