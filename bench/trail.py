"""How long the operator's event trail takes with a million entries in the streams.

    python bench/trail.py [--deliveries 500000] [--lookups 300] [--cluster]

Deliveries go through the relay's own fan-out (default routes: two streams, so 500,000
deliveries are a million entries), with bodies shaped like AnyFormat's. Then the streams
get what a busy deployment has: a group that has handled everything, one holding 100,000
entries pending, one that has read nothing, and 1,000 dead letters (some replayed). The
trail (``GET /api/events/{id}``) and the extraction lookup are timed for random events,
from the Python client (what the API handler does, minus HTTP): p50, p99, max in ms.
Bounded: the fill is pipelined, the lookups counted; the Redis is the benchmark's own.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from redis.asyncio import Redis
from redis.asyncio import RedisCluster as AsyncRedisCluster
from sizing import delivery

from relay.operator.trail import event_trail, extraction_events
from relay.streams.routes import Router
from relay.streams.writer import FanoutWriter
from relay.worker.deadletter import dead_letter, replay
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

DEDUPE_TTL = 604_800
CONCURRENT = 2_000  # deliveries written at once (the cluster client's pool is smaller)
CONCURRENT_ON_CLUSTER = 100


async def fill(
    client: Redis, deliveries: int, concurrent: int
) -> tuple[list[str], list[tuple[str, str]]]:
    """Write the deliveries, ``concurrent`` at a time; the streams and (id, extraction id)
    of every delivery."""
    writer = FanoutWriter(client, dedupe_ttl=DEDUPE_TTL)
    streams = list(Router("anyformat").streams_for("extraction.completed", ""))
    written: list[tuple[str, str]] = []
    for start in range(0, deliveries, concurrent):
        batch = [delivery(n) for n in range(start, min(deliveries, start + concurrent))]
        await asyncio.gather(*(writer.write(entry, streams) for entry in batch))
        written += [(entry.id, entry.extraction_id) for entry in batch]
    return streams, written


async def shape(client: Redis, stream: str) -> None:
    """Groups in every state, and dead letters, on the firehose."""
    await client.xgroup_create(stream, "done", id="$")
    await client.xgroup_create(stream, "holding", id="0")
    await client.xgroup_create(stream, "unread", id="0")
    for _ in range(10):  # 100,000 pending on one consumer
        await client.xreadgroup("holding", "c1", {stream: ">"}, count=10_000)
    await client.xgroup_create(stream, "failing", id="0")
    reply: Any = await client.xreadgroup("failing", "c2", {stream: ">"}, count=1_000)
    for entry_id, fields in reply[0][1]:
        decoded = {k.decode(): v for k, v in fields.items()}
        await dead_letter(client, stream, "failing", entry_id.decode(), decoded,
                          error="RuntimeError: boom", attempts=5)  # fmt: skip
    letters = await client.xrange(f"{stream}:dlq", count=300)
    for dlq_id, _ in letters:
        await replay(client, stream, dlq_id.decode())


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name:<28} p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   "
            f"max {ordered[-1]:6.2f} ms   ({len(ordered)} lookups)")  # fmt: skip


async def measure(client: Redis, deliveries: int, lookups: int, concurrent: int) -> None:
    started = time.perf_counter()
    streams, written = await fill(client, deliveries, concurrent)
    await shape(client, streams[0])
    lengths = [int(await client.xlen(stream)) for stream in streams]
    print(f"filled in {time.perf_counter() - started:.0f} s: {sum(lengths):,} entries in "
          f"{len(streams)} streams {lengths}, groups done/holding (100,000 pending)/unread/"
          f"failing, {await client.xlen(f'{streams[0]}:dlq')} dead letters")  # fmt: skip
    # The first 1,000 deliveries were dead-lettered by "failing" (300 of them replayed).
    picks = random.sample(written, lookups) + written[:50] + written[500:550]
    trail_ms: list[float] = []
    states: dict[str, int] = {}
    for event_id, _ in picks:
        t0 = time.perf_counter()
        trail = await event_trail(client, streams, event_id)
        trail_ms.append((time.perf_counter() - t0) * 1000)
        assert trail is not None, event_id
        for group in trail["streams"][0]["groups"]:
            states[group["state"]] = states.get(group["state"], 0) + 1
    find_ms: list[float] = []
    for _, extraction_id in random.sample(written, lookups):
        t0 = time.perf_counter()
        found = await extraction_events(client, streams, extraction_id)
        find_ms.append((time.perf_counter() - t0) * 1000)
        assert len(found["events"]) == 1
    print(summary("trail (GET /api/events/ID)", trail_ms))
    print(summary("by extraction id", find_ms))
    print(f"group states seen: {dict(sorted(states.items()))}")


async def run(args: argparse.Namespace) -> None:
    if args.cluster:
        cluster = RedisCluster(replicas=0).start()
        try:
            cluster.wait_ok()
            client = cast(Redis, AsyncRedisCluster.from_url(cluster.url))
            print("Redis Cluster, 3 masters")
            await measure(client, args.deliveries, args.lookups, CONCURRENT_ON_CLUSTER)
            await client.aclose()
        finally:
            cluster.close()
        return
    server = RedisServer()
    server.start()
    try:
        client = Redis.from_url(server.url)
        print("one redis-server")
        await measure(client, args.deliveries, args.lookups, CONCURRENT)
        await client.aclose()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=500_000, help="two entries each")
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--cluster", action="store_true", help="on a three-master Cluster")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
