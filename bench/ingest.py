"""Delivery throughput and latency, three servers measured in one run under one load.

    python bench/ingest.py [--rounds 3] [--paced] [--rss] [--workers] [--only abc]
                           [--before DIR] [--trim-target N]
    python bench/ingest.py --replica --only acw

(a) bare aiohttp (read the body, answer 200): the framework's ceiling;
(b) the receiver a user writes by hand: FastAPI + uvicorn, standardwebhooks, SET NX + 2 XADD;
(c) `relay run` with its default settings (logging included);
(w) `relay run` with RELAY_REDIS_WAIT_REPLICAS=1 (needs --replica: a local replica of the
    benchmark's Redis, attached for every server of the run, so (w)/(c) is the cost of WAIT).
(0) with ``--before DIR``: `relay run` from another source tree (e.g. ``git archive main``
    unpacked in DIR), interleaved with the others: a change's before/after in one run.
(t) with ``--tracing``: `relay run` with tracing on (OTEL_TRACES_SAMPLER=always_on, the
    SDK's batch exporter over OTLP/HTTP to a local receiver in this process, which counts
    the spans it gets): the cost of tracing every delivery. (c) is the same relay, off.

``--trim-target N`` runs both relays with RELAY_STREAM_MAXLEN=N and a consumer group on the
firehose that keeps up (moved to the stream's end twice a second), so trimming runs all
along: its cost shows in the ratios.

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
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.exceptions import ResponseError

from tests.support.redis_server import RedisServer, free_port

SECRET = "whsec_" + base64.b64encode(b"bench-signing-key-0123456789abcd").decode()
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
CORES = os.cpu_count() or 1
PIN_SERVER = ["taskset", "-c", "0"] if CORES >= 2 and shutil.which("taskset") else []
PIN_LOAD = ["taskset", "-c", "1"] if CORES >= 2 and shutil.which("taskset") else []
THREADS = 2
OTLP: list[str] = []  # --tracing: the local receiver's endpoint
BEFORE: list[Path] = [ROOT]  # --before: the relay's source tree before a change
TRIM_TARGET = [0]  # --trim-target


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    entries: int | None
    cpu_us: dict[str, float]  # CPU time per request: server, Redis, the rest (wrk)


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


def wrk(
    url: str,
    deliveries: Path,
    seconds: float,
    connections: int,
    rate: float = 0,
    watch: dict[str, list[int]] | None = None,
) -> dict:
    """Run wrk; with ``watch`` (name -> pids), also the CPU time each used per request,
    sampled from /proc over the middle of the run (wrk's start-up excluded), and the
    rest of the machine's busy time as "wrk+other"."""
    per_connection = rate / connections if rate else 0
    command = [
        *PIN_LOAD, "wrk", "-t", str(THREADS), "-c", str(connections), "-d", f"{round(seconds)}s",
        "--latency", "--timeout", "10s", "-s", str(ROOT / "bench/deliveries.lua"), url,
        "--", str(deliveries), str(THREADS), str(per_connection),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu: dict[str, float] = {}
    if watch and seconds >= 4:
        time.sleep(1.5)
        start = time.monotonic(), busy_seconds(), {k: cpu_seconds(v) for k, v in watch.items()}
        time.sleep(seconds - 2.5)
        end = time.monotonic(), busy_seconds(), {k: cpu_seconds(v) for k, v in watch.items()}
        cpu = {name: end[2][name] - start[2][name] for name in watch}
        cpu["wrk+other"] = end[1] - start[1] - sum(cpu.values())
        cpu["window"] = end[0] - start[0]
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {stderr.strip()} {stdout.strip()}")
    figures = parse_wrk(stdout)
    if cpu:
        requests = figures["rps"] * cpu.pop("window")
        figures["cpu_us"] = {name: used / requests * 1e6 for name, used in cpu.items()}
    return figures


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of ``pids`` and their children still running."""
    total = 0
    for pid in {*pids, *(child for parent in pids for child in children(parent))}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def busy_seconds() -> float:
    """CPU time the whole machine spent not idle (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICK


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


class Server:
    """One server under test, started pinned to core 0 (or unpinned with ``pin=False``)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], workdir: Path,
                 ready_path: str = "/", pin: bool = True, cwd: Path = ROOT) -> None:  # fmt: skip
        self.name, self.env, self.workdir = name, env, workdir
        self.port = int(env["PORT"])
        self.admin = int(env.get("ADMIN_PORT", self.port))
        self.url = f"http://127.0.0.1:{self.port}/webhooks/anyformat"
        log = workdir / f"{name}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*(PIN_SERVER if pin else []), *command], env={**os.environ, **env}, cwd=cwd,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{self.admin}{ready_path}")
        except RuntimeError:
            self.stop()
            raise RuntimeError(log.read_text()[-3000:]) from None

    def stop(self) -> None:
        stop(self.process)

    def received(self) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics") as r:
            match = re.search(rb"^relay_deliveries_received_total (\S+)$", r.read(), re.M)
        return float(match[1]) if match else 0.0


def measure(
    server: Server, redis: RedisServer, args: argparse.Namespace, rate: float = 0
) -> Result:
    warm, run = server.workdir / "warm.tsv", server.workdir / "run.tsv"
    write_deliveries(warm, 20_000)
    write_deliveries(run, args.deliveries)
    wrk(server.url, warm, args.warmup, args.connections, rate)
    time.sleep(0.5)  # the warm-up's last requests land
    before = entries_added(redis)
    watch = {"server": [server.process.pid], "redis": [redis.process.pid]}  # type: ignore[union-attr]
    figures = wrk(server.url, run, args.duration, args.connections, rate, watch)
    time.sleep(0.5)
    entries = entries_added(redis) - before
    return Result(server.name, figures["rps"], figures["p50"], figures["p99"],
                  figures["requests"], figures["non_2xx"],
                  None if server.name == "a" else entries, figures.get("cpu_us", {}))  # fmt: skip


def entries_added(redis: RedisServer) -> int:
    """Entries ever added to the firehose (trimming does not lower it); 0: no stream."""
    try:
        return int(redis.client().xinfo_stream("anyformat:events")["entries-added"])
    except ResponseError:
        return 0


class KeepUp(threading.Thread):
    """A consumer group on the firehose that keeps up: moved to the stream's end twice a
    second, so the trimmer has acknowledged entries to remove all along."""

    def __init__(self, redis: RedisServer) -> None:
        super().__init__(daemon=True)
        self.client = redis.client()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            try:
                self.client.xgroup_setid("anyformat:events", "bench", "$")
            except ResponseError:
                self.client.xgroup_create("anyformat:events", "bench", "$", mkstream=True)


def relay_env(redis: RedisServer, **extra: str) -> dict[str, str]:
    port, admin = free_port(), free_port()
    return {"PORT": str(port), "ADMIN_PORT": str(admin), "RELAY_PORT": str(port),
            "RELAY_ADMIN_PORT": str(admin), "RELAY_HOST": "127.0.0.1",
            "RELAY_REGISTER": "false", "RELAY_WEBHOOK_SECRET": SECRET,
            "RELAY_REDIS_URL": redis.url, **extra}  # fmt: skip


def rss_run(server: Server, args: argparse.Namespace) -> tuple[int, int]:
    """The relay's RSS (kB) after 100k and after 1M deliveries (ids recycled past the file)."""
    deliveries = server.workdir / "rss.tsv"
    write_deliveries(deliveries, 200_000)
    command = [*PIN_LOAD, "wrk", "-t", str(THREADS), "-c", str(args.connections), "-d", "600s",
               "-s", str(ROOT / "bench/deliveries.lua"), server.url, "--", str(deliveries),
               str(THREADS), "0"]  # fmt: skip
    load = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks: dict[int, int] = {}
    try:
        base = server.received()
        for target in (100_000, 1_000_000):
            while server.received() - base < target:
                if load.poll() is not None:
                    raise RuntimeError("wrk stopped early")
                time.sleep(0.5)
            marks[target] = rss_kb(server.process.pid)
    finally:
        load.kill()
        load.wait()
    return marks[100_000], marks[1_000_000]


def start_server(name: str, redis: RedisServer, workdir: Path, **extra: str) -> Server:
    python = sys.executable
    port = str(free_port())
    redis.client().flushall()
    if name in ("0", "c") and TRIM_TARGET[0]:
        extra = {"RELAY_STREAM_MAXLEN": str(TRIM_TARGET[0]), **extra}
    if name == "0":
        return Server("0", [python, "-m", "relay", "run"], relay_env(redis, **extra), workdir,
                      ready_path="/readyz", cwd=BEFORE[0])  # fmt: skip
    if name == "a":
        return Server("a", [python, "bench/servers/bare_aiohttp.py", "--uvloop"],
                      {"PORT": port}, workdir)  # fmt: skip
    if name == "t":
        extra = {"OTEL_EXPORTER_OTLP_ENDPOINT": OTLP[0], "OTEL_TRACES_SAMPLER": "always_on",
                 **extra}  # fmt: skip
        return Server("t", [python, "-m", "relay", "run"], relay_env(redis, **extra), workdir,
                      ready_path="/readyz")  # fmt: skip
    if name == "w":
        extra = {"RELAY_REDIS_WAIT_REPLICAS": "1", **extra}
        return Server("w", [python, "-m", "relay", "run"], relay_env(redis, **extra), workdir,
                      ready_path="/readyz")  # fmt: skip
    if name == "b":
        return Server(
            "b",
            [python, "-m", "uvicorn", "--app-dir", "bench/servers", "fastapi_receiver:app",
             "--host", "127.0.0.1", "--port", port, "--log-level", "warning",
             "--no-access-log"],
            {"PORT": port, "SECRET": SECRET, "REDIS_URL": redis.url}, workdir,
        )  # fmt: skip
    # Both relay processes may use both cores with RELAY_WORKERS > 1.
    return Server(name, [python, "-m", "relay", "run"], relay_env(redis, **extra), workdir,
                  ready_path="/readyz", pin="RELAY_WORKERS" not in extra)  # fmt: skip


def median(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.rps)[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--deliveries", type=int, default=300_000)
    parser.add_argument("--only", default="abc", help="which servers to measure")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--paced", action="store_true", help="relay p99 at half its maximum")
    parser.add_argument("--rss", action="store_true", help="relay RSS after 100k and 1M")
    parser.add_argument("--workers", action="store_true", help="RELAY_WORKERS=2 vs 1")
    parser.add_argument("--before", type=Path, help="source tree of the relay before a change")
    parser.add_argument(
        "--trim-target", type=int, default=0, help="RELAY_STREAM_MAXLEN, a group keeping up"
    )
    parser.add_argument("--replica", action="store_true", help="a local replica, for (w)")
    parser.add_argument(
        "--tracing", action="store_true", help="(t): relay run tracing every delivery"
    )
    args = parser.parse_args()
    sink = None
    if args.tracing:
        from bench.otlp_sink import OtlpSink

        if PIN_LOAD:  # the receiver's thread runs here: on the load's core, not the server's
            os.sched_setaffinity(0, {1})
        sink = OtlpSink().start()
        OTLP.append(sink.endpoint)
        if "t" not in args.only:
            args.only += "t"
    if args.before:
        BEFORE[0] = args.before.resolve()
        args.only = args.only.replace("c", "0c") if "0" not in args.only else args.only
    TRIM_TARGET[0] = args.trim_target
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is required (apt-get install wrk)")
    if "w" in args.only and not args.replica:
        sys.exit("bench: (w) waits for a replica: add --replica")

    redis = RedisServer()
    redis.start()
    replica = None
    if args.replica:
        replica = RedisServer("--replicaof", "127.0.0.1", str(redis.port))
        replica.start()
        while redis.client().execute_command("WAIT", 1, 100) < 1:
            pass  # WAIT itself waits: until the replica's first sync is done
    if PIN_LOAD:
        for server in (redis, replica):
            if server is not None:
                subprocess.run(["taskset", "-pc", "1", str(server.process.pid)],  # type: ignore[union-attr]
                               capture_output=True)  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    rounds: dict[str, list[Result]] = {name: [] for name in args.only}
    keep_up = KeepUp(redis) if args.trim_target else None
    if keep_up is not None:
        keep_up.start()
    extra: list[str] = []
    try:
        # Interleaved (a, b, c, a, b, c...): a slow spell of a noisy machine hits every
        # server instead of one, and the medians' ratios hold.
        for _ in range(args.rounds):
            for name in args.only:
                server = start_server(name, redis, workdir)
                try:
                    rounds[name].append(measure(server, redis, args))
                finally:
                    server.stop()
        if args.paced or args.rss:
            server = start_server("c", redis, workdir)
            try:
                if args.paced:
                    half = median(rounds["c"]).rps / 2 if rounds.get("c") else 5000
                    paced = measure(server, redis, args, rate=half)
                    extra.append(f"relay at half its maximum ({half:.0f} req/s offered): "
                                 f"{paced.rps:.0f} req/s, p50 {paced.p50_ms:.2f} ms, "
                                 f"p99 {paced.p99_ms:.2f} ms, non-2xx {paced.non_2xx}")  # fmt: skip
                    # The same pace against (a): the floor this machine puts under p99.
                    floor = start_server("a", redis, workdir)
                    try:
                        bare = measure(floor, redis, args, rate=half)
                    finally:
                        floor.stop()
                    extra.append(f"(a) bare aiohttp at the same pace: {bare.rps:.0f} req/s, "
                                 f"p50 {bare.p50_ms:.2f} ms, p99 {bare.p99_ms:.2f} ms")  # fmt: skip
                if args.rss:
                    at_100k, at_1m = rss_run(server, args)
                    growth = at_1m / at_100k
                    extra.append(f"relay RSS: {at_100k / 1024:.1f} MiB after 100k deliveries, "
                                 f"{at_1m / 1024:.1f} MiB after 1M ({growth:.3f}x)")  # fmt: skip
            finally:
                server.stop()
        if args.workers:
            # Unpinned: the relay processes may use both cores; wrk and Redis stay on core 1.
            by_count: dict[int, list[Result]] = {1: [], 2: []}
            for _ in range(args.rounds):
                for count in (1, 2):
                    server = start_server(f"w{count}", redis, workdir, RELAY_WORKERS=str(count))
                    try:
                        by_count[count].append(measure(server, redis, args))
                    finally:
                        server.stop()
            for count, results in by_count.items():
                result = median(results)
                extra.append(f"RELAY_WORKERS={count} (unpinned, wrk+Redis on core 1): "
                             f"{result.rps:.0f} req/s, p99 {result.p99_ms:.2f} ms, "
                             f"non-2xx {result.non_2xx}, {cpu_text(result)}")  # fmt: skip
            ratio = median(by_count[2]).rps / median(by_count[1]).rps
            extra.append(f"RELAY_WORKERS=2 / RELAY_WORKERS=1: {ratio:.2f}")
    finally:
        if keep_up is not None:
            keep_up.stopped.set()
            keep_up.join()
        if replica is not None:
            replica.close()
        redis.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if sink is not None:
            sink.stop()
    report(rounds, args)
    if sink is not None:
        print(f"(t) spans received by the local OTLP receiver: {sink.spans} "
              f"in {sink.requests} export requests")  # fmt: skip
    for line in extra:
        print(line)


def cpu_text(result: Result) -> str:
    """Where the two cores went, per request: the ceiling of any server on this machine."""
    parts = ", ".join(f"{name} {us:.0f}" for name, us in result.cpu_us.items())
    return f"CPU us/request: {parts}" if parts else "CPU: run too short to sample"


def report(rounds: dict[str, list[Result]], args: argparse.Namespace) -> None:
    pinning = "server on core 0, wrk and Redis on core 1" if PIN_SERVER else "no pinning"
    print(f"{CORES} cores ({pinning}); wrk {THREADS} threads, {args.connections} connections, "
          f"{args.warmup:g} s warm-up, {args.duration:g} s measured, "
          f"median of {args.rounds} interleaved round(s)")  # fmt: skip
    names = {"a": "(a) bare aiohttp", "b": "(b) FastAPI + standardwebhooks + redis",
             "c": "(c) relay run", "w": "(w) relay run, WAIT 1 (local replica)",
             "0": f"(0) relay run from {BEFORE[0]}",
             "t": "(t) relay run, tracing every delivery"}  # fmt: skip
    if args.replica:
        print("a local replica of the benchmark's Redis is attached for every server (core 1)")
    print(f"{'server':40} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>8} "
          f"{'entries':>8}  every round's req/s")  # fmt: skip
    by: dict[str, Result] = {}
    for name, results in rounds.items():
        r = by[name] = median(results)
        entries = "-" if r.entries is None else str(r.entries)
        each = " ".join(f"{x.rps:.0f}" for x in results)
        print(f"{names[name]:40} {r.rps:8.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
              f"{r.non_2xx:8d} {entries:>8}  {each}")  # fmt: skip
        print(f"{'':40} {cpu_text(r)}")
        # entries >= 2xx: requests in flight when wrk stops are written but not counted.
        for x in results:
            if x.entries is not None and x.entries < x.requests - x.non_2xx:
                print(f"   !! {x.requests - x.non_2xx} 2xx but only {x.entries} entries")
    if "a" in by and "c" in by:
        print(f"ratio (c)/(a): {by['c'].rps / by['a'].rps:.2f}")
    if "b" in by and "c" in by:
        print(f"ratio (c)/(b): {by['c'].rps / by['b'].rps:.2f}")
    if "a" in by and "0" in by:
        print(f"ratio (0)/(a): {by['0'].rps / by['a'].rps:.2f}  (before)")
    if "0" in by and "c" in by:
        print(f"ratio (c)/(0): {by['c'].rps / by['0'].rps:.2f}  (after / before)")
    if TRIM_TARGET[0]:
        print(f"both relays with RELAY_STREAM_MAXLEN={TRIM_TARGET[0]} and a group keeping up")
    if "t" in by and "a" in by:
        print(f"ratio (t)/(a): {by['t'].rps / by['a'].rps:.2f}  (tracing on)")
    if "t" in by and "c" in by:
        print(f"ratio (t)/(c): {by['t'].rps / by['c'].rps:.2f}  (tracing on / off)")
    if "w" in by and "c" in by:
        print(f"ratio (w)/(c): {by['w'].rps / by['c'].rps:.2f}")
    if "w" in by and "a" in by:
        print(f"ratio (w)/(a): {by['w'].rps / by['a'].rps:.2f}")


if __name__ == "__main__":
    main()
