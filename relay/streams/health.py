"""Stream health on ``/metrics``: length, per-group lag, pending and oldest pending age, DLQ
length and dedupe set size, for every stream the routes can write.

Sampled from Redis in the background (at most every 15 s) in one pipelined round trip
whatever the number of streams and groups (one script call per stream), and served from the
last sample: a scrape never
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

from relay.redis.client import Redis
from relay.redis.errors import RedisError
from relay.redis.keys import dedupe_key, dlq_stream
from relay.redis.pipeline import pipelined
from relay.redis.scripts import HEALTH, command, reloading

INTERVAL_SECONDS = 15.0


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
    """One sample of every stream: one pipelined round trip (per node on a cluster) of one
    script call and one DLQ length per stream."""
    now_seconds, now_micros = await redis.time()
    now_ms = int(now_seconds) * 1000 + int(now_micros) // 1000
    calls = [
        call
        for stream in streams
        for call in (command(HEALTH, [stream, dedupe_key(stream)]), ("XLEN", dlq_stream(stream)))
    ]
    replies: list[Any] = await reloading(redis, HEALTH, lambda: pipelined(redis, calls))
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [
        _stream_health(stream, figures, int(dlq_length), now_ms)
        for stream, figures, dlq_length in zip(streams, replies[::2], replies[1::2], strict=True)
    ]


def _stream_health(stream: str, figures: list[Any], dlq_length: int, now_ms: int) -> StreamHealth:
    length, dedupe_ids, *groups = figures
    return StreamHealth(
        stream=stream,
        length=int(length),
        dlq_length=dlq_length,
        dedupe_ids=int(dedupe_ids),
        groups=tuple(
            GroupHealth(
                name=_text(name),
                lag=int(lag) if lag else None,
                pending=int(pending),
                oldest_pending_seconds=_age(_text(oldest), now_ms),
            )
            for name, lag, pending, oldest in zip(*[iter(groups)] * 4, strict=True)
        ),
    )


def _age(entry_id: str, now_ms: int) -> float:
    if not entry_id:
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
