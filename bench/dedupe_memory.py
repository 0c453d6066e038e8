"""Redis memory per delivery of the dedupe marks: message id only vs id + content mark.

    python bench/dedupe_memory.py [--deliveries 100000]

Writes the same deliveries (ids and extraction ids shaped like AnyFormat's) through the
relay's own writer into two streams of one redis-server: one without content marks (the
baseline: what the relay wrote outside rotations before content marks were always on), one
with them. Prints ``MEMORY USAGE`` of each dedupe set per delivery, and of each stream for
scale. Small sets are listpack-encoded and far cheaper: only the large figure is typical.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from relay.streams.keys import dedupe_key
from relay.streams.marks import content_mark
from relay.streams.writer import Entry, FanoutWriter
from tests.support.redis_server import RedisServer

PAYLOAD = b"x" * 350  # the size of a delivery's body; the same for both streams


async def fill(url: str, deliveries: int) -> dict[str, tuple[int, int]]:
    redis = Redis.from_url(url)
    writer = FanoutWriter(redis, maxlen=10 * deliveries, dedupe_ttl=604_800)
    for n in range(deliveries):
        message_id = f"msg_{uuid.uuid4().hex}"
        extraction_id = str(uuid.uuid4())
        for stream, mark in (
            ("ids-only", None),
            ("with-content", content_mark("extraction.completed", extraction_id, "processed")),
        ):
            entry = Entry(message_id, "extraction.completed", PAYLOAD, n, extraction_id, "", mark)
            await writer.write(entry, [stream])
    usage = {}
    for stream in ("ids-only", "with-content"):
        marks = await redis.memory_usage(dedupe_key(stream), samples=0)
        entries = await redis.memory_usage(stream, samples=0)
        usage[stream] = (int(marks or 0), int(entries or 0))
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
    base_marks, base_stream = usage["ids-only"]
    marks, stream = usage["with-content"]
    print(f"{n} deliveries, bytes per delivery (MEMORY USAGE ... SAMPLES 0)")
    print(f"  dedupe set, message ids only:       {base_marks / n:7.1f}")
    print(f"  dedupe set, ids + content marks:    {marks / n:7.1f}  ({marks / base_marks:.2f}x)")
    print(f"  stream entry (for scale):           {stream / n:7.1f}")
    print(f"  total per delivery and stream:      {(base_marks + base_stream) / n:7.1f}"
          f" -> {(marks + stream) / n:7.1f}  (+{(marks - base_marks) / n:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
