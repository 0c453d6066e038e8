"""Redis memory per delivery, measured with MEMORY USAGE on a real redis-server, and the
sizing table of docs/retention.md (entries and memory per day at 1, 10 and 100 events/s).

    python bench/sizing.py [--entries 100000]

Deliveries go through the relay's own fan-out (default routes: the firehose and the
per-event stream, each with its dedupe set) with bodies shaped like AnyFormat's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis

from relay.redis.keys import dedupe_key, extraction_index_key, trail_records_key
from relay.streams.marks import content_mark
from relay.streams.routes import Router
from relay.streams.writer import Entry, FanoutWriter
from tests.support.redis_server import RedisServer

DAY = 86_400
DEDUPE_TTL = 604_800  # RELAY_DEDUPE_TTL's default: a week of ids per stream
MAXLEN = 1_000_000  # RELAY_STREAM_MAXLEN's default


def delivery(n: int) -> Entry:
    """A delivery as AnyFormat sends it (the webhooks API's example body, fresh ids)."""
    extraction_id, workflow_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = json.dumps({
        "event": "extraction.completed",
        "timestamp": "2024-03-24T12:02:30.000Z",
        "data": {"extraction_id": extraction_id, "status": "processed",
                 "workflow_id": workflow_id, "processed_at": "2024-03-24T12:02:30.000Z"},
    }).encode()  # fmt: skip
    return Entry(f"msg_{uuid.uuid4().hex[:27]}", "extraction.completed", body,
                 1_711_281_750_000 + n, extraction_id, workflow_id, None)  # fmt: skip


async def fill(url: str, count: int, with_content_marks: bool) -> list[str]:
    client = Redis.from_url(url)
    writer = FanoutWriter(client, dedupe_ttl=DEDUPE_TTL)
    streams = Router("anyformat").streams_for("extraction.completed", "")
    try:
        for start in range(0, count, 500):
            batch = [delivery(n) for n in range(start, min(count, start + 500))]
            await asyncio.gather(*(writer.write(with_marks(entry, with_content_marks), streams)
                                   for entry in batch))  # fmt: skip
    finally:
        await client.aclose()
    return list(streams)


def with_marks(entry: Entry, with_content_marks: bool) -> Entry:
    if with_content_marks:
        entry.content_mark = content_mark(entry.event, entry.extraction_id, "processed")
    return entry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        client = server.client()
        figures = {}
        for content in (False, True):
            client.flushall()
            streams = asyncio.run(fill(server.url, args.entries, content))
            stream_bytes = client.memory_usage(streams[0], samples=0) / args.entries
            members = client.zcard(dedupe_key(streams[0]))
            dedupe_bytes = client.memory_usage(dedupe_key(streams[0]), samples=0) / members
            figures[content] = (stream_bytes, dedupe_bytes, members / args.entries)
            # What the event trail reads, over the delivery's streams: the whole record and
            # the extraction index in the first, the entry id alone in the others.
            trail_bytes = (
                sum(
                    (client.memory_usage(key, samples=0) or 0)
                    for stream in streams
                    for key in (trail_records_key(stream), extraction_index_key(stream))
                )
                / args.entries
            )
        body = len(delivery(0).payload)
    finally:
        server.close()
    stream_bytes, dedupe_bytes, _ = figures[False]
    _, content_dedupe_bytes, _ = figures[True]
    print(f"{args.entries} deliveries, default routes (2 streams each), body {body} bytes")
    print(f"stream entry: {stream_bytes:.0f} bytes (MEMORY USAGE of the stream / entries)")
    print(f"dedupe member: {dedupe_bytes:.0f} bytes (message id only); "
          f"{content_dedupe_bytes:.0f} bytes per member with content marks "
          f"(two members per delivery)")  # fmt: skip
    print(f"trail records + extraction index: {trail_bytes:.0f} bytes per delivery, all its "
          f"streams together (kept as long as its dedupe marks)")  # fmt: skip
    print()
    print(
        "| events/s | entries per stream per day | stream memory per day (each stream) "
        "| dedupe ids per stream (7 days) | dedupe memory per stream "
        "| trail records (all streams) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for rate in (1, 10, 100):
        per_day = rate * DAY
        ids = rate * DEDUPE_TTL
        print(f"| {rate} | {per_day:,} | {mib(per_day * stream_bytes)} | {ids:,} "
              f"| {mib(ids * dedupe_bytes)} ({mib(2 * ids * content_dedupe_bytes)} "
              f"with content marks) | {mib(ids * trail_bytes)} |")  # fmt: skip
    print(
        f"(RELAY_STREAM_MAXLEN={MAXLEN:,} holds {mib(MAXLEN * stream_bytes)} per stream "
        f"once reached and nothing lags)"
    )


def mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size / 1024:,.0f} KiB"


if __name__ == "__main__":
    main()
