"""A burst of half-sent large bodies against `relay run`: its memory before, at peak, after.

    python bench/memory_burst.py [--bodies 300] [--declared 1000000] [--sent 500000]
                                 [--limit 256Mi] [--settle 5]

Opens ``--bodies`` connections at once, each declaring ``Content-Length: --declared`` and
sending ``--sent`` bytes of it, never the rest (unsigned: anyone on the internet can). Once
every one is answered or held (relay_request_bytes_held says so), prints the relay's RSS
and its peak (VmHWM), how many were answered 503, and the budget; then closes them all and
prints the RSS after ``--settle`` seconds. The relay is a real `relay run` process with
RELAY_MEMORY_LIMIT=--limit and a real redis-server, on loopback. tests/ingest/
test_memory_burst.py is this, asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET

PATH = "/webhooks/anyformat"
MiB = 1024 * 1024


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss, peak = (int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM"))
    return rss, peak


def metric(relay: RelayProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{relay.admin_port}/metrics") as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


async def half_send(port: int, head: bytes, sent: int, release: asyncio.Event) -> bool:
    """True when the relay answered or closed the connection before ``release``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for offset in range(0, sent, 65536):
            writer.write(b"a" * min(65536, sent - offset))
            await writer.drain()
        read = asyncio.ensure_future(reader.read())
        released = asyncio.ensure_future(release.wait())
        await asyncio.wait({read, released}, return_when=asyncio.FIRST_COMPLETED)
        read.cancel()
        released.cancel()
        return read.done() and not read.cancelled()
    except ConnectionError:
        return True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def burst(args: argparse.Namespace, relay: RelayProcess) -> None:
    assert relay.process is not None
    pid = relay.process.pid
    idle, _ = memory(pid)
    head = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: {args.declared}\r\n\r\n"
    release = asyncio.Event()
    tasks = [
        asyncio.create_task(half_send(relay.port, head.encode(), args.sent, release))
        for _ in range(args.bodies)
    ]
    each = len(head) + args.sent
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        refused = sum(task.done() and task.result() for task in tasks)
        held = metric(relay, "relay_request_bytes_held")
        if held == (args.bodies - refused) * each:
            break
        await asyncio.sleep(0.1)
    rss, peak = memory(pid)
    budget = metric(relay, "relay_request_bytes_budget")
    print(f"idle RSS            {idle / MiB:7.1f} MiB")
    print(f"burst RSS / peak    {rss / MiB:7.1f} / {peak / MiB:.1f} MiB  (limit {args.limit})")
    print(f"held / budget       {held / MiB:7.1f} / {budget / MiB:.1f} MiB")
    print(f"answered 503        {refused} of {args.bodies}")
    release.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(args.settle)
    rss, peak = memory(pid)
    print(f"after {args.settle:.0f} s RSS / peak {rss / MiB:7.1f} / {peak / MiB:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bodies", type=int, default=300)
    parser.add_argument("--declared", type=int, default=1_000_000)
    parser.add_argument("--sent", type=int, default=500_000)
    parser.add_argument("--limit", default="256Mi", help="RELAY_MEMORY_LIMIT")
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()
    redis = RedisServer()
    redis.start()
    relay = RelayProcess({
        "RELAY_REDIS_URL": redis.url, "RELAY_REGISTER": "false", "RELAY_WEBHOOK_SECRET": SECRET,
        "RELAY_MEMORY_LIMIT": args.limit, "RELAY_LOG_LEVEL": "warning",
        "RELAY_CLIENT_TIMEOUT": "300",
    })  # fmt: skip
    try:
        relay.start()
        asyncio.run(burst(args, relay))
    finally:
        relay.kill()
        redis.close()


if __name__ == "__main__":
    main()
