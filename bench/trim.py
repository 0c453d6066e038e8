"""What consumer-aware trimming costs Redis: how long a trim pass holds it with a group far
behind, keeping up, just caught up, and in the fallback scan (no marks yet), against one
delivery's append on the same Redis as baseline.

    python bench/trim.py [--backlog 500000] [--target 100000]

Entries are the size of a default delivery (see bench/sizing.py). Redis runs on its own;
the figures are Redis-side (SLOWLOG durations, microseconds) and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis

from relay.redis.keys import trim_marks_key
from relay.streams.trim import SCAN_BUDGET, Retention, Trimmer
from relay.streams.writer import FanoutWriter
from tests.support.redis_server import RedisServer

sys.path.insert(0, str(ROOT / "bench"))
from sizing import delivery

STREAM = "anyformat:events"


async def fill(client: Redis, count: int) -> None:
    fields = delivery(0).fields()
    for start in range(0, count, 10_000):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(min(10_000, count - start)):
                pipe.xadd(STREAM, dict(zip(fields[::2], fields[1::2], strict=True)))
            await pipe.execute()


async def slowlog_us(client: Redis, command: bytes) -> list[int]:
    """Durations (us) of the logged calls whose first argument is ``command``."""
    entries = await client.slowlog_get(100_000)
    return [int(e["duration"]) for e in entries if e["command"].split(b" ")[0].upper() == command]


async def held_us(client: Redis, work: Awaitable[object]) -> list[int]:
    """How long each trim call of ``work`` held Redis (SLOWLOG, us)."""
    await client.slowlog_reset()
    await work
    return await slowlog_us(client, b"EVALSHA")


async def run(url: str, backlog: int, target: int) -> None:
    client = Redis.from_url(url)
    await client.config_set("slowlog-log-slower-than", 0)
    await client.config_set("slowlog-max-len", 100_000)
    lines = []
    try:
        writer = FanoutWriter(client, dedupe_ttl=604_800)
        for n in range(200):  # baseline: one delivery's append (one stream)
            await writer.write(delivery(n), [f"{STREAM}:baseline"])
        append = statistics.median(await slowlog_us(client, b"EVALSHA"))
        lines.append(f"baseline: one delivery's append holds Redis {append:.0f} us (median)")

        await client.xgroup_create(STREAM, "billing", id="0", mkstream=True)
        await fill(client, backlog)
        trimmer = Trimmer(client, Retention(maxlen=target), lambda: [STREAM])
        calls = await held_us(client, trimmer.trim(STREAM))
        lines.append(f"a group {backlog:,} entries behind, target {target:,}: "
                     f"{max(calls)} us, nothing trimmed")  # fmt: skip

        await client.xgroup_setid(STREAM, "billing", "$")
        started = time.perf_counter()
        calls = await held_us(client, trimmer.trim(STREAM))
        lines.append(f"the group caught up: {len(calls)} call, {max(calls)} us "
                     f"({time.perf_counter() - started:.3f} s wall) to trim "
                     f"{backlog - target:,}, length {await client.xlen(STREAM):,}")  # fmt: skip

        # Keeping up: the group reads everything new, its newest 10 entries still pending;
        # each pass finds the cut at the mark of an earlier pass.
        async def keep_up_pass() -> None:
            await fill(client, target // 50)
            await client.xreadgroup("billing", "c1", {STREAM: ">"}, count=10**9)
            pending = await client.xpending_range(STREAM, "billing", "-", "+", 10**6)
            await client.xack(STREAM, "billing", *(p["message_id"] for p in pending[:-10]))
            await trimmer.trim(STREAM)

        for _ in range(53):  # marks now cover a whole target's worth of entries
            await keep_up_pass()
        steady = [max(await held_us(client, keep_up_pass())) for _ in range(5)]
        lines.append(f"a group keeping up ({target // 50:,} entries a pass, 10 pending): "
                     f"{statistics.median(steady):.0f} us a pass (median of 5), "
                     f"length {await client.xlen(STREAM):,}")  # fmt: skip

        # The fallback: no mark serves (fresh marks key), a group needs the newest entry.
        await client.delete(trim_marks_key(STREAM))
        await fill(client, 10 * SCAN_BUDGET)
        reply = await client.xreadgroup("billing", "c1", {STREAM: ">"}, count=10**9)
        await client.xack(STREAM, "billing", *(i for i, _ in reply[0][1][:-1]))
        calls = await held_us(client, trimmer.trim(STREAM))
        held = statistics.median(calls)
        lines.append(f"no mark yet, {10 * SCAN_BUDGET:,} over the target: {len(calls)} calls "
                     f"scanning up to {SCAN_BUDGET} entries each, median {held:.0f} us, "
                     f"max {max(calls)} us ({max(calls) / append:.0f}x one append)")  # fmt: skip
    finally:
        await client.aclose()
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=500_000)
    parser.add_argument("--target", type=int, default=100_000)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        asyncio.run(run(server.url, args.backlog, args.target))
    finally:
        server.close()


if __name__ == "__main__":
    main()
