"""Stream health on ``/metrics``: length, per-group lag, pending and oldest pending age, DLQ
length and dedupe set size, for every stream the routes can write.

Sampled from Redis in the background (at most every 15 s) in two pipelined round trips
whatever the number of streams and groups, and served from the last sample: a scrape never
waits on Redis. A failed sample clears the figures rather than serving stale ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from relay.streams.keys import dedupe_key

INTERVAL_SECONDS = 15.0


def dlq_stream(stream: str) -> str:
    """The dead-letter stream of ``stream``: relay.worker.deadletter's naming (the streams
    package does not import the workers)."""
    return f"{stream}:dlq"


@dataclass(frozen=True)
class GroupHealth:
    name: str
    lag: int | None  # entries not yet delivered to the group; None when Redis cannot tell
    pending: int
    oldest_pending_seconds: float  # age of the oldest pending entry (by its id); 0: none


@dataclass(frozen=True)
class StreamHealth:
    stream: str
    length: int
    dlq_length: int
    dedupe_ids: int
    groups: tuple[GroupHealth, ...]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def sample(redis: Redis, streams: Sequence[str]) -> list[StreamHealth]:
    """One sample of every stream: one pipeline for lengths and groups, one for the oldest
    pending entry of each group that has any."""
    now_seconds, now_micros = await redis.time()
    now_ms = int(now_seconds) * 1000 + int(now_micros) // 1000
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
            pipe.xlen(dlq_stream(stream))
            pipe.zcard(dedupe_key(stream))
        replies = await pipe.execute(raise_on_error=False)
    rows = []
    for index, stream in enumerate(streams):
        length, groups, dlq_length, dedupe_ids = replies[4 * index : 4 * index + 4]
        for reply in (length, dlq_length, dedupe_ids):
            if isinstance(reply, Exception):
                raise reply
        if isinstance(groups, ResponseError):  # no such stream yet: no groups
            groups = []
        elif isinstance(groups, Exception):
            raise groups
        rows.append((stream, int(length), int(dlq_length), int(dedupe_ids), groups))
    oldest = await _oldest_pending(redis, rows)
    return [
        StreamHealth(
            stream=stream,
            length=length,
            dlq_length=dlq_length,
            dedupe_ids=dedupe_ids,
            groups=tuple(
                GroupHealth(
                    name=_text(group["name"]),
                    lag=None if group.get("lag") is None else int(group["lag"]),
                    pending=int(group["pending"]),
                    oldest_pending_seconds=_age(oldest.get((stream, _text(group["name"]))), now_ms),
                )
                for group in groups
            ),
        )
        for stream, length, dlq_length, dedupe_ids, groups in rows
    ]


async def _oldest_pending(
    redis: Redis, rows: list[tuple[str, int, int, int, Any]]
) -> dict[tuple[str, str], str]:
    wanted = [
        (stream, _text(group["name"]))
        for stream, *_, groups in rows
        for group in groups
        if int(group["pending"])
    ]
    if not wanted:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for stream, group in wanted:
            pipe.xpending_range(stream, group, min="-", max="+", count=1)
        replies = await pipe.execute()
    found = zip(wanted, replies, strict=True)
    return {key: _text(reply[0]["message_id"]) for key, reply in found if reply}


def _age(entry_id: str | None, now_ms: int) -> float:
    if entry_id is None:
        return 0.0
    return max(0, now_ms - int(entry_id.split("-", 1)[0])) / 1000


class StreamHealthCollector(Collector):
    """Serves the last sample as gauges; registered in the relay's registry."""

    def __init__(self) -> None:
        self.streams: list[StreamHealth] = []

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        length, lag, pending, oldest, dlq, dedupe = families
        for row in self.streams:
            length.add_metric([row.stream], row.length)
            dlq.add_metric([row.stream], row.dlq_length)
            dedupe.add_metric([row.stream], row.dedupe_ids)
            for group in row.groups:
                labels = [row.stream, group.name]
                if group.lag is not None:
                    lag.add_metric(labels, group.lag)
                pending.add_metric(labels, group.pending)
                oldest.add_metric(labels, group.oldest_pending_seconds)
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        def gauge(name: str, text: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=["stream", *labels])

        return [
            gauge("relay_stream_length", "Entries in the stream (XLEN)."),
            gauge("relay_stream_group_lag", "Entries not yet delivered to the group.", "group"),
            gauge("relay_stream_group_pending", "Entries delivered, not acknowledged.", "group"),
            gauge(
                "relay_stream_group_oldest_pending_seconds",
                "Age of the group's oldest unacknowledged entry (0: none).",
                "group",
            ),
            gauge("relay_stream_dlq_length", "Entries in the stream's dead-letter queue."),
            gauge("relay_dedupe_ids", "Delivered ids (and content marks) remembered."),
        ]


class StreamHealthMonitor:
    """Samples every ``interval`` seconds into ``collector`` until cancelled."""

    def __init__(
        self,
        redis: Redis,
        streams: Callable[[], Sequence[str]],
        collector: StreamHealthCollector,
        *,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self._redis = redis
        self._streams = streams
        self.collector = collector
        self.interval = interval

    async def refresh(self) -> None:
        try:
            self.collector.streams = await sample(self._redis, self._streams())
        except RedisError as exc:
            self.collector.streams = []
            structlog.get_logger("relay.health").warning(
                "stream_health_failed", error=type(exc).__name__
            )

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)
