"""The cost of one stream-health collection (what /metrics reports every 15 s), with 100
streams of 10 consumer groups each, against a round trip to the same Redis as baseline.

    python bench/stream_health.py [--streams 100] [--groups 10] [--repeat 20]

Every group has read part of its stream and left entries pending, so the collection takes
its full path (XINFO GROUPS, and XPENDING for the oldest pending entry of every group).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis

from relay.streams.health import sample
from tests.support.redis_server import RedisServer


def prepare(server: RedisServer, streams: list[str], groups: int) -> None:
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        for n in range(200):
            pipe.xadd(stream, {"id": f"m{n}", "payload": "x" * 300})
        for g in range(groups):
            pipe.xgroup_create(stream, f"group-{g}", id="0")
            pipe.xreadgroup(f"group-{g}", "c1", {stream: ">"}, count=20 + g)
        pipe.xadd(f"{stream}:dlq", {"error": "boom"})
    pipe.execute()


async def measure(url: str, streams: list[str], repeat: int) -> None:
    client = Redis.from_url(url)
    try:
        for _ in range(3):  # warm the connection and Redis
            await sample(client, streams)
            await client.ping()
        collections, pings, cpu = [], [], []
        for _ in range(repeat):
            info = await client.info("cpu")
            before_cpu = info["used_cpu_user"] + info["used_cpu_sys"]
            started = time.perf_counter()
            rows = await sample(client, streams)
            collections.append(time.perf_counter() - started)
            info = await client.info("cpu")
            cpu.append(info["used_cpu_user"] + info["used_cpu_sys"] - before_cpu)
            started = time.perf_counter()
            await client.ping()
            pings.append(time.perf_counter() - started)
    finally:
        await client.aclose()
    groups = sum(len(row.groups) for row in rows)
    collection, ping = statistics.median(collections), statistics.median(pings)
    print(f"{len(rows)} streams, {groups} groups (every group with pending entries)")
    redis_ms = statistics.median(cpu) * 1000
    print(f"one collection: {collection * 1000:.2f} ms wall (median of {repeat}), "
          f"Redis CPU {redis_ms:.1f} ms (INFO cpu; includes one INFO call)")  # fmt: skip
    print(f"baseline, one PING round trip: {ping * 1000:.3f} ms; "
          f"collection / PING: {collection / ping:.0f}x")  # fmt: skip
    print(f"one collection every 15 s: {collection / 15 * 100:.3f} % of the time (wall)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        streams = [f"anyformat:events:type-{n}" for n in range(args.streams)]
        prepare(server, streams, args.groups)
        asyncio.run(measure(server.url, streams, args.repeat))
    finally:
        server.close()


if __name__ == "__main__":
    main()
