"""Entries per second through the worker runtime vs. a bare XREADGROUP + XACK loop.

    python bench/worker_throughput.py [--entries 20000] [--concurrency 10]

Both run against one private redis-server started here, in the same run, on the same
entries (a fresh consumer group each), so the ratio holds on a noisy machine. Besides the
rates it prints this process's CPU time per entry (``time.process_time``): on a shared
machine, other processes slow the wall clock far more than they change the CPU each entry
costs here, so that is the figure to compare between versions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from relay.observability import configure_logging
from relay.worker import Event, Worker
from tests.support.redis_server import RedisServer

STREAM = "bench:events"


async def fill(client: Redis, count: int) -> None:
    payload = json.dumps({"event": "extraction.completed", "data": {"extraction_id": "x" * 36}})
    async with client.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(STREAM, {"id": f"msg_{n}", "event": "extraction.completed",
                               "payload": payload, "received_at": "0",
                               "extraction_id": "x", "workflow_id": ""})  # fmt: skip
        await pipe.execute()


Figures = tuple[float, float]  # entries per second, CPU microseconds per entry


async def bare_loop(client: Redis, count: int, batch: int, *, batched_ack: bool) -> Figures:
    """Read a batch, parse each payload, ack each entry (or the whole batch at once)."""
    group = f"bare-{batched_ack}"
    await client.xgroup_create(STREAM, group, id="0")
    done = 0
    started, cpu = time.perf_counter(), time.process_time()
    while done < count:
        reply = await client.xreadgroup(group, "c", {STREAM: ">"}, count=batch, block=1000)
        entries = reply[0][1]
        for entry_id, fields in entries:
            json.loads(fields[b"payload"])
            if not batched_ack:
                await client.xack(STREAM, group, entry_id)
        if batched_ack:
            await client.xack(STREAM, group, *(entry_id for entry_id, _ in entries))
        done += len(entries)
    return _figures(count, started, cpu)


def _figures(count: int, started: float, cpu: float) -> Figures:
    elapsed, spent = time.perf_counter() - started, time.process_time() - cpu
    return count / elapsed, spent / count * 1e6


async def worker_run(client: Redis, count: int, concurrency: int) -> Figures:
    handled = 0
    finished = asyncio.Event()

    async def noop(event: Event) -> None:
        nonlocal handled
        handled += 1
        if handled == count:
            finished.set()

    worker = Worker(client, stream=STREAM, group="relay", handler=noop, start_id="0",
                    concurrency=concurrency, block=1.0)  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(worker.run())
    waiter = asyncio.create_task(finished.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the worker died: show why
        raise RuntimeError("worker stopped before handling every entry")
    while int((await client.xpending(STREAM, "relay"))["pending"]):
        await asyncio.sleep(0.001)
    figures = _figures(count, started, cpu)
    worker.stop()
    await task
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Logs as in production (JSON, one line per attempt), written to /dev/null.
    sink = open(os.devnull, "w")  # lives as long as the run
    configure_logging("info", "json", sink)
    server = RedisServer()
    server.start()
    client = Redis.from_url(server.url)
    try:
        bare, batched, ours = [], [], []
        for _ in range(args.rounds):
            await client.flushall()
            await fill(client, args.entries)
            bare.append(await bare_loop(client, args.entries, args.concurrency, batched_ack=False))
            batched.append(
                await bare_loop(client, args.entries, args.concurrency, batched_ack=True)
            )
            ours.append(await worker_run(client, args.entries, args.concurrency))
        b, bb, w = (max(rate for rate, _ in runs) for runs in (bare, batched, ours))
        cb, cbb, cw = (min(cpu for _, cpu in runs) for runs in (bare, batched, ours))
        print(f"entries per round: {args.entries}, rounds: {args.rounds}, best of each, "
              f"batch/concurrency {args.concurrency}")  # fmt: skip
        rows = [("bare XREADGROUP + XACK per entry (redis-py):", b, cb),
                ("bare XREADGROUP + one XACK per batch:", bb, cbb),
                ("relay worker, no-op handler:", w, cw)]  # fmt: skip
        for label, rate, cpu in rows:
            print(f"{label:45}{rate:10.0f} entries/s {cpu:7.1f} us CPU/entry")
        print(f"ratio worker / bare per-entry ack:           {w / b:10.2f}")
        print(f"ratio worker / bare batched ack:             {w / bb:10.2f}")
    finally:
        await client.aclose()
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
