"""Slow clients against `relay run`: do signed deliveries still get through?

    python bench/slow_clients.py [--headers 1000] [--bodies 1000] [--timeout 10]

Opens ``--headers`` connections that trickle their headers and ``--bodies`` connections that
send complete headers (Content-Length: 100000) and then trickle the body, one byte every
``--pace`` seconds, none of them ever idle long enough for an idle timeout. While they
hold their connections, a signed delivery is sent every 0.2 s. Prints: deliveries sent and
their statuses, their worst latency, how many slow connections the relay closed and how
long after their first byte (against RELAY_CLIENT_TIMEOUT + 1 s), and the relay's RSS
before, at its peak and after. The relay is a real `relay run` process with its defaults
(RELAY_CLIENT_TIMEOUT from --timeout) and a real redis-server, on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp

from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET, event_body, sign

PATH = "/webhooks/anyformat"


@dataclass
class SlowClient:
    kind: str
    first_byte: float = 0.0
    closed_at: float | None = None
    answer: bytes = b""
    error: str | None = None


@dataclass
class Deliveries:
    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def slow_client(port: int, client: SlowClient, pace: float) -> None:
    if client.kind == "headers":
        head, rest = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\n".encode(), b"X-Slow: " * 500
    else:
        head = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: 100000\r\n\r\n{{"
        head, rest = head.encode(), b"a" * 99_999
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        client.error = type(exc).__name__
        return

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            client.first_byte = time.monotonic()
            for byte in rest:
                await asyncio.sleep(pace)
                writer.write(bytes([byte]))

    sender = asyncio.create_task(trickle())
    try:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                client.answer += chunk
        client.closed_at = time.monotonic()
    finally:
        sender.cancel()
        writer.close()


async def deliveries(url: str, stop: asyncio.Event, results: Deliveries) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            body = event_body()
            started = time.monotonic()
            try:
                async with http.post(url, data=body, headers=sign(body)) as response:
                    await response.read()
                    results.statuses.append(response.status)
            except aiohttp.ClientError:
                results.statuses.append(0)
            results.latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, relay: RelayProcess) -> None:
    assert relay.process is not None
    pid = relay.process.pid
    rss_before, _ = rss_kib(pid)
    clients = [SlowClient("headers") for _ in range(args.headers)]
    clients += [SlowClient("body") for _ in range(args.bodies)]
    stop = asyncio.Event()
    results = Deliveries()
    started = time.monotonic()
    tasks = [asyncio.create_task(slow_client(relay.port, client, args.pace)) for client in clients]
    sender = asyncio.create_task(deliveries(f"{relay.url}{PATH}", stop, results))
    peak = rss_before
    limit = started + args.timeout * 3 + 30
    while not all(task.done() for task in tasks) and time.monotonic() < limit:
        await asyncio.sleep(0.25)
        peak = max(peak, rss_kib(pid)[0])
    connected = time.monotonic() - started
    stop.set()
    await sender
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(1)  # let the relay release what the connections held
    rss_after, hwm = rss_kib(pid)

    closed = [c for c in clients if c.closed_at is not None and c.first_byte]
    after_first = sorted(c.closed_at - c.first_byte for c in closed)  # type: ignore[operator]
    late = [d for d in after_first if d > args.timeout + 1]
    answered_408 = sum(c.answer.startswith(b"HTTP/1.1 408 ") for c in closed)
    failed = [c for c in clients if c.error]
    ok = sum(status == 200 for status in results.statuses)
    print(
        f"relay: `relay run`, RELAY_CLIENT_TIMEOUT={args.timeout:g}; "
        f"{args.headers} connections trickling headers + {args.bodies} trickling bodies, "
        f"one byte every {args.pace:g} s; {os.cpu_count()} cores shared with other work"
    )
    print(
        f"deliveries sent meanwhile: {len(results.statuses)}, answered 200: {ok}, "
        f"others: {sorted(set(results.statuses) - {200}) or 'none'}"
    )
    if results.latencies:
        print(
            f"delivery latency: median {statistics.median(results.latencies) * 1000:.1f} ms, "
            f"worst {max(results.latencies) * 1000:.1f} ms"
        )
    print(
        f"slow connections closed by the relay: {len(closed)} of {len(clients)} "
        f"({answered_408} answered 408 first; {len(failed)} could not connect)"
    )
    if after_first:
        print(
            f"closed after their first byte: min {after_first[0]:.2f} s, "
            f"median {statistics.median(after_first):.2f} s, max {after_first[-1]:.2f} s; "
            f"later than timeout + 1 s: {len(late)}"
        )
    print(f"all slow connections done after {connected:.1f} s")
    print(
        f"relay RSS: before {rss_before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB "
        f"(VmHWM {hwm / 1024:.1f} MiB), after {rss_after / 1024:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--headers", type=int, default=1000)
    parser.add_argument("--bodies", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=10, help="RELAY_CLIENT_TIMEOUT")
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between bytes")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 2 * (args.headers + args.bodies) + 1024)
    if soft < wanted:  # the relay inherits it
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    redis = RedisServer()
    redis.start()
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    relay = RelayProcess(
        {
            "RELAY_REDIS_URL": redis.url,
            "RELAY_REGISTER": "false",
            "RELAY_WEBHOOK_SECRET": SECRET,
            "RELAY_CLIENT_TIMEOUT": str(args.timeout),
            "PYTHONPATH": python_path,
        }
    )
    try:
        relay.start()
        import uvloop  # the client side's own loop lag would blur the figures

        uvloop.run(run(args, relay))
    finally:
        relay.kill()
        redis.close()


if __name__ == "__main__":
    main()
