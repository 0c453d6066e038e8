"""Delivery throughput and latency, three servers measured in one run under one load.

    python bench/ingest.py [--duration 10] [--connections 64] [--rss] [--quick]

(a) bare aiohttp (read the body, answer 200): the framework's ceiling;
(b) the receiver a user writes by hand: FastAPI + uvicorn, standardwebhooks, SET NX + 2 XADD;
(c) `relay run` with its default settings (logging included).

Load: pre-signed Standard Webhooks deliveries (unique ids, ~350-byte bodies shaped like
AnyFormat's, fresh timestamps) replayed by wrk through bench/deliveries.lua. With two or
more cores the server is pinned to core 0 and wrk and Redis to core 1. Needs `wrk`
(Debian package) and `pip install fastapi uvicorn`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.redis_server import RedisServer, free_port

SECRET = "whsec_" + base64.b64encode(b"bench-signing-key-0123456789abcd").decode()
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
CORES = os.cpu_count() or 1
PIN_SERVER = ["taskset", "-c", "0"] if CORES >= 2 and shutil.which("taskset") else []
PIN_LOAD = ["taskset", "-c", "1"] if CORES >= 2 and shutil.which("taskset") else []
THREADS = 2


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    entries: int | None


def write_deliveries(path: Path, count: int) -> None:
    """``count`` deliveries signed now; each line: id, timestamp, signature, body."""
    now = str(int(time.time()))
    workflow = str(uuid.uuid4())
    with path.open("w") as out:
        for n in range(count):
            message_id = f"msg_{uuid.uuid4().hex}"
            body = json.dumps(
                {
                    "event": "extraction.completed",
                    "timestamp": "2024-03-24T12:02:30.000Z",
                    "data": {
                        "extraction_id": str(uuid.uuid4()),
                        "status": "processed",
                        "workflow_id": workflow,
                        "processed_at": "2024-03-24T12:02:30.000Z",
                        "file_name": f"invoice-{n:08d}.pdf",
                        "pages": 3,
                        "confidence": 0.987,
                    },
                },
                separators=(",", ":"),
            )
            mac = hmac.new(KEY, f"{message_id}.{now}.{body}".encode(), hashlib.sha256).digest()
            out.write(f"{message_id}\t{now}\tv1,{base64.b64encode(mac).decode()}\t{body}\n")


def wrk(url: str, deliveries: Path, seconds: float, connections: int, rate: float = 0) -> dict:
    per_connection = rate / connections if rate else 0
    command = [
        *PIN_LOAD, "wrk", "-t", str(THREADS), "-c", str(connections), "-d", f"{round(seconds)}s",
        "--latency", "--timeout", "10s", "-s", str(ROOT / "bench/deliveries.lua"), url,
        "--", str(deliveries), str(THREADS), str(per_connection),
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"wrk failed: {finished.stderr.strip()} {finished.stdout.strip()}")
    return parse_wrk(finished.stdout)


def parse_wrk(output: str) -> dict:
    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": requests,
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": errors[1] if errors else "",
    }


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*PIN_SERVER, *command], env={**os.environ, **env}, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(name: str, command: list[str], env: dict[str, str], redis: RedisServer,
            args: argparse.Namespace, workdir: Path, ready_path: str = "/") -> tuple[Result, int]:  # fmt: skip
    port = int(env["PORT"])
    redis.client().flushall()
    process = start(command, env, workdir / f"{name}.log")
    try:
        try:
            wait_http(f"http://127.0.0.1:{env.get('ADMIN_PORT', port)}{ready_path}")
        except RuntimeError:
            raise RuntimeError((workdir / f"{name}.log").read_text()[-3000:]) from None
        url = f"http://127.0.0.1:{port}/webhooks/anyformat"
        warm, run = workdir / "warm.tsv", workdir / "run.tsv"
        write_deliveries(warm, 20_000)
        write_deliveries(run, args.deliveries)
        if process.poll() is not None:
            raise RuntimeError((workdir / f"{name}.log").read_text()[-2000:])
        wrk(url, warm, args.warmup, args.connections)
        before = redis.client().xlen("anyformat:events")
        figures = wrk(url, run, args.duration, args.connections)
        after = redis.client().xlen("anyformat:events")
        entries = after - before if name != "a" else None
        result = Result(name, figures["rps"], figures["p50"], figures["p99"],
                        figures["requests"], figures["non_2xx"], entries)  # fmt: skip
        return result, process.pid
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--deliveries", type=int, default=300_000)
    parser.add_argument("--rss", action="store_true", help="RSS after 100k and 1M deliveries")
    parser.add_argument("--only", default="abc", help="which servers to measure")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is required (apt-get install wrk)")

    redis = RedisServer()
    redis.start()
    if PIN_LOAD:
        subprocess.run(["taskset", "-pc", "1", str(redis.process.pid)], capture_output=True)  # type: ignore[union-attr]
    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    python = sys.executable
    results: list[Result] = []
    try:
        if "a" in args.only:
            port = free_port()
            results.append(measure("a", [python, "bench/servers/bare_aiohttp.py", "--uvloop"],
                                   {"PORT": str(port)}, redis, args, workdir)[0])  # fmt: skip
        if "b" in args.only:
            port = free_port()
            results.append(measure(
                "b",
                [python, "-m", "uvicorn", "--app-dir", "bench/servers", "fastapi_receiver:app",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                 "--no-access-log"],
                {"PORT": str(port), "SECRET": SECRET, "REDIS_URL": redis.url},
                redis, args, workdir,
            )[0])  # fmt: skip
        if "c" in args.only:
            port, admin = free_port(), free_port()
            env = {"PORT": str(port), "ADMIN_PORT": str(admin), "RELAY_PORT": str(port),
                   "RELAY_ADMIN_PORT": str(admin), "RELAY_HOST": "127.0.0.1",
                   "RELAY_REGISTER": "false", "RELAY_WEBHOOK_SECRET": SECRET,
                   "RELAY_REDIS_URL": redis.url}  # fmt: skip
            results.append(measure("c", [python, "-m", "relay", "run"], env, redis, args,
                                   workdir, ready_path="/readyz")[0])  # fmt: skip
    finally:
        redis.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)


def report(results: list[Result], args: argparse.Namespace) -> None:
    pinning = "server on core 0, wrk and Redis on core 1" if PIN_SERVER else "no pinning"
    print(f"{CORES} cores ({pinning}); wrk {THREADS} threads, {args.connections} connections, "
          f"{args.warmup:g} s warm-up, {args.duration:g} s measured")  # fmt: skip
    names = {"a": "(a) bare aiohttp", "b": "(b) FastAPI + standardwebhooks + redis",
             "c": "(c) relay run"}  # fmt: skip
    print(f"{'server':42} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'entries':>9}")
    for r in results:
        entries = "-" if r.entries is None else str(r.entries)
        print(f"{names[r.name]:42} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} "
              f"{r.non_2xx:8d} {entries:>9}")  # fmt: skip
        if r.entries is not None and r.entries != r.requests - r.non_2xx:
            print(f"   !! {r.requests - r.non_2xx} 2xx but {r.entries} entries")
    by = {r.name: r for r in results}
    if "a" in by and "c" in by:
        print(f"ratio (c)/(a): {by['c'].rps / by['a'].rps:.2f}")
    if "b" in by and "c" in by:
        print(f"ratio (c)/(b): {by['c'].rps / by['b'].rps:.2f}")


if __name__ == "__main__":
    main()
