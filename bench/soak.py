"""Soak: the relay and its workers for minutes to hours at a steady load, with faults;
nothing lost end to end, nothing growing.

    python bench/soak.py --duration 3600 [--rate 30] [--faults relay-kill,...]
                         [--fault-every 45] [--sentinel] [--out DIR] [--chart]

On loopback only: Redis with AOF (``appendfsync always``: a write answered is on disk),
two ``relay run`` replicas, two consumer groups (``audit`` on the firehose, ``billing`` on
the per-event stream) with two ``relay worker`` processes each, and a sender like AnyFormat
(bench/soak_sender.py). Faults (``--faults``, one every ``--fault-every`` seconds, in turn):

  relay-kill     SIGKILL replica 1, start it again
  relay-term     SIGTERM replica 1 (it must exit 0), start it again
  worker-kill    SIGKILL worker 1 of a group while it is inside handlers, start it again
  redis-restart  SIGKILL Redis, start it again on the same AOF
  redis-failover (with ``--sentinel``, instead of redis-restart) SIGKILL the master; the
                 sentinels promote the replica; the old master rejoins as its replica

Replica 0 and worker 0 of each group are never faulted: they live through every fault of
the others and Redis, and their RSS, open files and asyncio tasks are the series judged for
growth (a restarted process starts afresh). Every ``--sample-every`` seconds the soak also
samples each group's pending list, Redis' ``used_memory`` and its data set per retained
stream entry (``used_memory_dataset``: streams, dedupe sets, all but buffers); after
``--warmup`` each series' least-squares slope must stay under its limit (bench/soak_report.py).

At the end the sender stops, every group drains, and the ledger is judged: every id
answered 200 handled by each group through exactly one stream entry, each double handling
explained by a SIGKILLed worker that held it, nothing dead-lettered. Exit status 0 only when
all of that holds. Everything lands in ``--out``: report.txt, samples.jsonl, faults.jsonl,
the handlers' ledger files, process logs, and with ``--chart`` soak.svg (RSS, latency,
lag and Redis memory over time, faults marked).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp
import redis

from bench.ingest import KEY, SECRET, rss_kb
from bench.soak_chart import chart
from bench.soak_children import Child, child_env, held_now
from bench.soak_redis import PlainRedis, SentinelRedis
from bench.soak_report import Kill, judge_group, judge_growth, read_ledger, render
from bench.soak_sender import Sender
from tests.support.redis_server import free_port

FIREHOSE, PER_EVENT = "anyformat:events", "anyformat:events:extraction.completed"
GROUPS = {"audit": FIREHOSE, "billing": PER_EVENT}
FAULTS = ("relay-kill", "worker-kill", "relay-term", "redis-restart")


def group_states(client: redis.Redis) -> dict[str, tuple[int, int, int]]:
    """Per group: pending, unread (0 once given the newest entry, else XINFO's lag) and
    XINFO's lag itself. XINFO's lag alone will not do: its entries-read counter can stay
    behind for good after an AOF reload or a failover (the relay's /metrics corrects it the
    same way, relay/streams/health.lua)."""
    states = {}
    for group, stream in GROUPS.items():
        info = {g["name"].decode(): g for g in client.xinfo_groups(stream)}[group]
        newest = client.xrevrange(stream, count=1)
        lag = info.get("lag")
        counted = -1 if lag is None else int(lag)  # -1: Redis cannot tell
        caught_up = not newest or entry_key(info["last-delivered-id"]) >= entry_key(newest[0][0])
        states[group] = (int(info["pending"]), 0 if caught_up else counted, counted)
    return states


def entry_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.ledger_dir = self.out / "ledger"
        self.ledger_dir.mkdir(parents=True, exist_ok=True)
        self.redis: PlainRedis | SentinelRedis = SentinelRedis() if args.sentinel else PlainRedis()
        self.relays: list[Child] = []
        self.workers: dict[str, list[Child]] = {}
        self.kills: list[Kill] = []
        self.fault_log: list[dict[str, object]] = []
        self.problems: list[str] = []
        self.samples: list[dict[str, float]] = []
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def start(self) -> None:
        self.redis.start()
        for n in range(2):
            port, admin = free_port(), free_port()
            env = child_env(RELAY_PORT=str(port), RELAY_ADMIN_PORT=str(admin),
                            RELAY_REGISTER="false", RELAY_WEBHOOK_SECRET=SECRET,
                            **self.redis.settings(),
                            RELAY_STREAM_MAXLEN=str(self.args.maxlen),
                            RELAY_DEDUPE_TTL=str(self.args.dedupe_ttl))  # fmt: skip
            relay = Child(f"relay-{n}", ["run"], env, admin, self.out, self.out)
            relay.url = f"http://127.0.0.1:{port}/webhooks/anyformat"  # type: ignore[attr-defined]
            self.relays.append(relay)
        for group, stream in GROUPS.items():
            self.workers[group] = []
            for n in range(2):
                consumer, admin = f"{group}-{n}", free_port()
                env = child_env(**self.redis.settings(), SOAK_GROUP=group,
                                SOAK_CONSUMER=consumer,
                                SOAK_LEDGER_DIR=str(self.ledger_dir))  # fmt: skip
                args = ["worker", "--stream", stream, "--group", group, "--handler",
                        "bench.soak_handler:handle", "--consumer", consumer, "--metrics-port",
                        str(admin), "--claim-idle", str(self.args.claim_idle)]  # fmt: skip
                self.workers[group].append(Child(f"worker-{consumer}", args, env, admin,
                                                 self.out, ROOT))  # fmt: skip
        await asyncio.gather(*(child.start() for child in self.children()))

    def children(self) -> list[Child]:
        return [*self.relays, *(w for ws in self.workers.values() for w in ws)]

    def record(self, fault: str, **details: object) -> None:
        entry = {"t": round(self.now(), 1), "fault": fault, **details}
        self.fault_log.append(entry)
        print(f"[{entry['t']:>7}s] {fault} {details}", flush=True)

    async def fault(self, name: str, turn: int) -> None:
        if name in ("relay-kill", "relay-term"):
            relay = self.relays[1]
            code = await relay.stop(signal.SIGKILL if name == "relay-kill" else signal.SIGTERM)
            if name == "relay-term" and code != 0:
                self.problems.append(f"relay-1 exited {code} on SIGTERM")
            await relay.start()
            self.record(name, exit=code)
        elif name == "worker-kill":
            group = sorted(GROUPS)[turn % len(GROUPS)]
            worker = self.workers[group][1]
            consumer = f"{group}-1"
            deadline = time.monotonic() + 10
            while (held := held_now(self.ledger_dir, group, consumer, worker.pid)) == 0:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.003)
            pid = worker.pid
            await worker.stop(signal.SIGKILL)
            self.kills.append(Kill(group, pid, time.time(), held))
            await worker.start()
            self.record(name, group=group, pid=pid, held=held)
        elif name == self.redis.fault_name:
            self.record(name, **await asyncio.to_thread(self.redis.fault))
        else:
            raise ValueError(name)

    async def faults(self, stop: asyncio.Event) -> None:
        names = [f for f in self.args.faults.split(",") if f]
        turn = 0
        while names:
            try:
                await asyncio.wait_for(stop.wait(), self.args.fault_every)
                return
            except TimeoutError:
                pass
            name = names[turn % len(names)]
            try:
                await self.fault(name, turn // len(names))
            except Exception as exc:  # the run goes on; the report names it
                self.problems.append(f"fault {name} at {self.now():.0f}s failed: {exc!r}")
            turn += 1

    async def sampler(self, sender: Sender, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while not stop.is_set():
                await self.sample(http, sender)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.args.sample_every)

    async def sample(self, http: aiohttp.ClientSession, sender: Sender) -> None:
        row: dict[str, float] = {"t": round(self.now(), 1)}
        for child in (self.relays[0], *(ws[0] for ws in self.workers.values())):
            if not child.alive():
                self.problems.append(f"{child.name} (never faulted) died at {self.now():.0f}s")
                await child.start()  # a fresh process: its series restart, the run goes on
            # Open files and tasks beyond what the load itself explains: a relay has one of
            # each per open public connection, a worker a task per entry it holds.
            figures = await child.metrics(http)
            load = figures.get("relay_public_connections", figures.get("relay_worker_held", 0))
            fds = len(os.listdir(f"/proc/{child.pid}/fd"))
            row[f"{child.name}:rss_kb"] = rss_kb(child.pid)
            row[f"{child.name}:fds"] = fds - figures.get("relay_public_connections", 0)
            row[f"{child.name}:tasks"] = figures.get("process_asyncio_tasks", math.nan) - load
            row[f"{child.name}:load"] = load
        try:
            client = await asyncio.to_thread(self.redis.client)
            info = client.info("memory")
            memory, dataset = int(info["used_memory"]), int(info["used_memory_dataset"])
            entries = sum(client.xlen(s) for s in GROUPS.values())
            row["redis:redis_used_memory"] = memory
            row["streams:entries"] = entries
            if entries >= 100:
                # The data set (no client or AOF buffers): what retained events cost.
                row["redis:redis_bytes_per_entry"] = dataset / entries
            for group, (pending, unread, counted) in group_states(client).items():
                row[f"{group}:pending"] = pending
                row[f"{group}:lag_entries"] = unread
                row[f"{group}:redis_lag"] = counted  # XINFO's own figure, for comparison
        except redis.RedisError:
            pass  # Redis restarting: this sample has no Redis figures
        recent = [ms for t, ms in sender.log.latency_ms[-400:]]
        if recent:
            row["sender:p99_ms"] = sorted(recent)[int(len(recent) * 0.99)]
        self.samples.append(row)
        with (self.out / "samples.jsonl").open("a") as out:
            out.write(json.dumps(row) + "\n")

    async def drain(self, seconds: float) -> bool:
        """Every group has been given the newest entry and acknowledged everything."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                client = await asyncio.to_thread(self.redis.client)
                if all(state[:2] == (0, 0) for state in group_states(client).values()):
                    return True
            except redis.RedisError:
                pass
            await asyncio.sleep(0.5)
        return False

    async def run(self) -> int:
        main_task = asyncio.current_task()
        assert main_task is not None
        for signum in (signal.SIGTERM, signal.SIGINT):  # stop early: children killed, not left
            asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
        await self.start()
        self.t0 = time.monotonic()
        urls = [relay.url for relay in self.relays]  # type: ignore[attr-defined]
        sender = Sender(urls, KEY, self.args.rate, uuid.uuid4().hex[:8], self.t0)
        stop_faults, stop_sampling = asyncio.Event(), asyncio.Event()
        sending = asyncio.create_task(sender.run())
        faulting = asyncio.create_task(self.faults(stop_faults))
        sampling = asyncio.create_task(self.sampler(sender, stop_sampling))
        await asyncio.sleep(self.args.duration)
        stop_faults.set()
        await faulting
        sender.stop.set()
        log = await sending
        duration = self.now()
        drained = await self.drain(self.args.claim_idle * 3 + 60)
        stop_sampling.set()
        await sampling
        if not drained:
            self.problems.append("the groups did not drain (pending or lag left)")
        for child in self.children():
            code = await child.stop(signal.SIGTERM)
            if code != 0:
                self.problems.append(f"{child.name} exited {code} on SIGTERM at the end")
        return self.judge(log, duration)

    def judge(self, log, duration: float) -> int:  # type: ignore[no-untyped-def]
        client = self.redis.client()
        dlq = {s: int(client.xlen(f"{s}:dlq")) for s in GROUPS.values()}
        entries = sum(client.xlen(s) for s in GROUPS.values())
        dataset = int(client.info("memory")["used_memory_dataset"])
        accepted = set(log.accepted)
        handlings = read_ledger(self.ledger_dir)
        failovers = getattr(self.redis, "failovers", [])
        ledgers = [judge_group(g, accepted, handlings.get(g, []), self.kills, failovers)
                   for g in GROUPS]  # fmt: skip
        growth = judge_growth(self.samples, self.args.warmup, self.args.limit_factor)
        latencies = sorted(ms for _, ms in log.latency_ms) or [0.0]
        faults: dict[str, int] = {}
        for entry in self.fault_log:
            faults[str(entry["fault"])] = faults.get(str(entry["fault"]), 0) + 1
        report = render(
            command=" ".join(shlex.quote(a) for a in ["python", "bench/soak.py", *sys.argv[1:]]),
            duration=duration, sent=log.sent, accepted=len(accepted), attempts=log.attempts,
            refused=dict(log.answers), faults=faults, ledgers=ledgers, dlq=dlq, growth=growth,
            redis_bytes_per_entry=dataset / max(entries, 1),
            latency_ms={"p50": latencies[len(latencies) // 2],
                        "p99": latencies[int(len(latencies) * 0.99)], "max": latencies[-1]},
        )  # fmt: skip
        if log.refused:
            self.problems.append(f"{len(log.refused)} deliveries refused (not 200/503)")
        if log.sent != len(accepted):
            self.problems.append(f"{log.sent - len(accepted)} deliveries never answered 200")
        failed = (self.problems or any(not ledger.ok for ledger in ledgers)
                  or any(dlq.values()) or any(not g.ok for g in growth))  # fmt: skip
        summary = {
            "duration_s": round(duration, 1), "sent": log.sent, "accepted": len(accepted),
            "attempts": log.attempts, "answers": dict(log.answers), "faults": faults,
            "worker_kills": [{"group": k.group, "held": k.held} for k in self.kills],
            "groups": {x.group: {"handled": x.handled, "lost": len(x.lost),
                                 "extra_entries": len(x.extra_entries), "doubled": x.doubled,
                                 "explained": x.explained, "unexplained": len(x.unexplained),
                                 "killed_mid_handler": x.killed_mid_handler,
                                 "never_sent": len(x.unknown)} for x in ledgers},
            "dlq": dlq, "growth": {g.series: {"slope_per_hour": g.slope, "stderr": g.stderr,
                                              "limit": g.limit,
                                              "ok": g.ok} for g in growth},
            "problems": self.problems, "passed": not failed,
        }  # fmt: skip
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
        report += "".join(f"problem: {p}\n" for p in self.problems)
        report += f"verdict: {'FAIL' if failed else 'PASS'}\n"
        (self.out / "report.txt").write_text(report)
        (self.out / "faults.jsonl").write_text(
            "".join(json.dumps(f) + "\n" for f in self.fault_log)
        )
        print(report, end="")
        if self.args.chart:
            chart(self.samples, self.fault_log, self.out / "soak.svg")
        return 1 if failed else 0

    def close(self) -> None:
        for child in self.children():
            if child.alive():
                assert child.process is not None
                child.process.kill()
        self.redis.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120, help="seconds of sending")
    parser.add_argument("--rate", type=float, default=30, help="deliveries per second")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in turn")
    parser.add_argument("--fault-every", type=float, default=45, help="seconds between faults")
    parser.add_argument("--sample-every", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=300, help="seconds before slopes count")
    parser.add_argument(
        "--limit-factor", type=float, default=1.0, help="multiplies every slope limit"
    )
    parser.add_argument("--maxlen", type=int, default=5000, help="RELAY_STREAM_MAXLEN")
    parser.add_argument("--dedupe-ttl", type=int, default=120, help="RELAY_DEDUPE_TTL")
    parser.add_argument("--claim-idle", type=float, default=10, help="workers' --claim-idle")
    parser.add_argument("--out", type=Path, help="output directory (default: a temp dir)")
    parser.add_argument(
        "--sentinel",
        action="store_true",
        help="master + replica under Sentinel; redis-failover for redis-restart",
    )
    parser.add_argument("--chart", action="store_true", help="soak.svg (bench/soak_chart.py)")
    args = parser.parse_args(argv)
    if args.sentinel:
        args.faults = args.faults.replace("redis-restart", "redis-failover")
    args.out = (args.out or Path(tempfile.mkdtemp(prefix="relay-soak-"))).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"soak: output in {args.out}", flush=True)
    soak = Soak(args)
    try:
        return asyncio.run(soak.run())
    finally:
        soak.close()


if __name__ == "__main__":
    sys.exit(main())
