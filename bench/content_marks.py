"""What content marks cost in Redis: memory and script time per delivery, against the
message id alone.

    python bench/content_marks.py [--deliveries 50000]

Writes the same deliveries (ids and extraction ids shaped like AnyFormat's) through the
relay's own writer into two streams of one redis-server: first all without content marks
(the baseline: what the relay wrote outside rotations before marks were always on), then all
with them. Prints ``MEMORY USAGE`` of each dedupe set per delivery (and of the stream, for
scale) and the append script's Redis time per call (``INFO commandstats``) for each phase.
Small sets are listpack-encoded and far cheaper: only the large figure is typical. Redis
time is CPU on a shared machine: compare the two phases of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from relay.redis.keys import dedupe_key
from relay.streams.marks import content_mark
from relay.streams.writer import Entry, FanoutWriter
from tests.support.redis_server import RedisServer

PAYLOAD = b"x" * 350  # the size of a delivery's body; the same for both streams


async def fill(url: str, deliveries: int) -> dict[str, tuple[int, int, float]]:
    """Per stream: dedupe set bytes, stream bytes, script microseconds per call."""
    redis = Redis.from_url(url)
    writer = FanoutWriter(redis, dedupe_ttl=604_800)
    await writer.load_script()
    events = [(f"msg_{uuid.uuid4().hex}", str(uuid.uuid4())) for _ in range(deliveries)]
    usage = {}
    for stream, marked in (("ids-only", False), ("with-content", True)):
        await redis.config_resetstat()
        for n, (message_id, extraction_id) in enumerate(events):
            mark = content_mark("extraction.completed", extraction_id, "processed")
            entry = Entry(message_id, "extraction.completed", PAYLOAD, n, extraction_id, "",
                          mark if marked else None)  # fmt: skip
            await writer.write(entry, [stream])
        stats = await redis.info("commandstats")
        marks = await redis.memory_usage(dedupe_key(stream), samples=0)
        entries = await redis.memory_usage(stream, samples=0)
        usage[stream] = (
            int(marks or 0),
            int(entries or 0),
            stats["cmdstat_evalsha"]["usec_per_call"],
        )
    await redis.aclose()
    return usage


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=100_000)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        usage = asyncio.run(fill(server.url, args.deliveries))
    finally:
        server.stop()
    n = args.deliveries
    base_marks, base_stream, base_us = usage["ids-only"]
    marks, stream, us = usage["with-content"]
    print(f"{n} deliveries, one stream each way")
    print("Redis memory per delivery (MEMORY USAGE ... SAMPLES 0), bytes:")
    print(f"  dedupe set, message ids only:       {base_marks / n:7.1f}")
    print(f"  dedupe set, ids + content marks:    {marks / n:7.1f}  ({marks / base_marks:.2f}x)")
    print(f"  stream entry (for scale):           {stream / n:7.1f}")
    print(f"  total per delivery and stream:      {(base_marks + base_stream) / n:7.1f}"
          f" -> {(marks + stream) / n:7.1f}  (+{(marks - base_marks) / n:.1f})")  # fmt: skip
    print("Redis time of the append script per delivery (commandstats usec_per_call):")
    print(f"  message ids only:                   {base_us:7.2f}")
    print(f"  ids + content marks:                {us:7.2f}  ({us / base_us:.2f}x)")


if __name__ == "__main__":
    main()
