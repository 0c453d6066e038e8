"""The soak's verdicts: the end-to-end ledger, growth by slope, and the text report.

Pure functions over what the run recorded (the sender's answers, the handlers' ledger
files, the fault log and the samples), so that the judgement can be tested on its own.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Per-hour slope limits after warm-up; a leak of 1 kB per delivery at 30/s is 108 MB/h,
# one task or file per fault (~80/h) shows as ~80/h: each limit sits well below what a
# real leak at the soak's rate gives, and well above the noise of a flat series.
LIMITS_PER_HOUR = {
    "rss_kb": 8 * 1024.0,
    "fds": 10.0,
    "tasks": 40.0,
    "pending": 400.0,
    "redis_used_memory": 4 * 1024 * 1024.0,
    "redis_bytes_per_entry": 100.0,
}


@dataclass(frozen=True)
class Handling:
    """One handler run in one worker process: ``done`` is None when it never finished."""

    group: str
    pid: int
    message_id: str
    entry_id: str
    started: float
    done: float | None = None
    received_at_ms: int = 0


@dataclass(frozen=True)
class Kill:
    """A worker process the soak SIGKILLed, and when."""

    group: str
    pid: int
    at: float
    held: int


@dataclass
class GroupLedger:
    group: str
    handled: int = 0  # distinct ids finished at least once
    lost: list[str] = field(default_factory=list)
    extra_entries: list[str] = field(default_factory=list)  # ids with >1 entry in the stream
    doubled: int = 0
    explained: int = 0
    unexplained: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # handled, never sent
    killed_mid_handler: int = 0  # handlings started and never finished (their worker died)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra_entries or self.unexplained or self.unknown)


def read_ledger(directory: Path) -> dict[str, list[Handling]]:
    """Every handling per group, from the ``<group>.<consumer>.<pid>.log`` files."""
    by_group: dict[str, list[Handling]] = defaultdict(list)
    for path in sorted(directory.glob("*.log")):
        group, _consumer, pid = path.name.rsplit(".", 3)[:3]
        open_runs: dict[tuple[str, str], list[float | int]] = {}
        finished: list[Handling] = []
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 6:
                continue  # a line cut by SIGKILL cannot happen (one write each); be safe
            kind, message_id, entry_id, _attempt, at, received = parts
            key = (message_id, entry_id)
            if kind == "S":
                open_runs[key] = [float(at), int(received)]
            elif kind == "D" and key in open_runs:
                started, received_ms = open_runs.pop(key)
                finished.append(Handling(group, int(pid), message_id, entry_id, float(started),
                                         float(at), int(received_ms)))  # fmt: skip
        for (message_id, entry_id), (started, received_ms) in open_runs.items():
            finished.append(Handling(group, int(pid), message_id, entry_id, float(started),
                                     None, int(received_ms)))  # fmt: skip
        by_group[group].extend(finished)
    return dict(by_group)


# A handling finished this long before a Sentinel failover may have had its XACK on the old
# master only (workers do not wait for replicas): handled again, it is the failover's double.
FAILOVER_WINDOW_SECONDS = 5.0


def judge_group(
    group: str,
    accepted: set[str],
    handlings: list[Handling],
    kills: list[Kill],
    failovers: Sequence[float] = (),
) -> GroupLedger:
    """Every accepted id handled at least once through exactly one stream entry; each
    id handled twice explained by a worker SIGKILLed while it held the entry, or by a
    failover right after the handling (its acknowledgement not yet on the replica)."""
    ledger = GroupLedger(group)
    killed_at = {kill.pid: kill.at for kill in kills if kill.group == group}
    per_id: dict[str, list[Handling]] = defaultdict(list)
    for handling in handlings:
        per_id[handling.message_id].append(handling)
        if handling.done is None:
            ledger.killed_mid_handler += 1
    for message_id, runs in per_id.items():
        if message_id not in accepted:
            ledger.unknown.append(message_id)
        if len({run.entry_id for run in runs}) > 1:
            ledger.extra_entries.append(message_id)
        finished = sorted((run for run in runs if run.done is not None), key=lambda r: r.started)
        if not finished:
            continue
        ledger.handled += 1
        if len(finished) > 1:
            ledger.doubled += 1
            # Every run but the last must have been cut off from its acknowledgement: its
            # process was SIGKILLed after the run started (it held the entry unacked).
            earlier = finished[:-1]
            if all(
                (run.pid in killed_at and killed_at[run.pid] >= run.started)
                or any(0 <= at - (run.done or 0) <= FAILOVER_WINDOW_SECONDS for at in failovers)
                for run in earlier
            ):
                ledger.explained += 1
            else:
                ledger.unexplained.append(message_id)
    handled_ids = {mid for mid, runs in per_id.items() if any(r.done is not None for r in runs)}
    ledger.lost = sorted(accepted - handled_ids)
    return ledger


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour; 0 for fewer than 3."""
    return fit(points)[0]


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope per hour and its standard error; (0, 0) for fewer than 3."""
    n = len(points)
    if n < 3:
        return 0.0, 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0, 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var
    residual = sum((v - mean_v - slope * (t - mean_t)) ** 2 for t, v in points) / (n - 2)
    return slope * 3600, math.sqrt(residual / var) * 3600


@dataclass(frozen=True)
class Growth:
    series: str
    kind: str
    slope: float  # per hour
    stderr: float  # of the slope, per hour
    limit: float
    first: float
    last: float
    samples: int

    @property
    def ok(self) -> bool:
        """Growth is a slope over the limit that noise cannot explain: more than three
        standard errors above zero (a short run's noisy ratio is not a leak)."""
        return self.slope <= self.limit or self.slope <= 3 * self.stderr


def judge_growth(
    samples: list[dict[str, float]], warmup: float, limit_factor: float = 1.0
) -> list[Growth]:
    """The slope of every sampled series after ``warmup`` seconds; a series is named
    ``<what>:<kind>`` and judged against its kind's limit (times ``limit_factor``)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample in samples:
        t = sample["t"]
        if t < warmup:
            continue
        for name, value in sample.items():
            if name != "t" and value is not None and not math.isnan(value):
                series[name].append((t, value))
    verdicts = []
    for name, points in sorted(series.items()):
        kind = name.rsplit(":", 1)[-1]
        if kind not in LIMITS_PER_HOUR:
            continue
        verdicts.append(Growth(name, kind, *fit(points),
                               LIMITS_PER_HOUR[kind] * limit_factor, points[0][1],
                               points[-1][1], len(points)))  # fmt: skip
    return verdicts


def render(
    *,
    command: str,
    duration: float,
    sent: int,
    accepted: int,
    attempts: int,
    refused: dict[str, int],
    faults: dict[str, int],
    ledgers: list[GroupLedger],
    dlq: dict[str, int],
    growth: list[Growth],
    redis_bytes_per_entry: float,
    latency_ms: dict[str, float],
) -> str:
    """The report, one figure a line, for people and for the docs."""
    lines = [
        f"command: {command}",
        f"duration: {duration / 60:.1f} min",
        f"deliveries: {sent} sent, {accepted} answered 200, {attempts} attempts "
        f"({attempts - sent} re-sends); non-200 answers: {dict(sorted(refused.items()))}",
        f"200 latency ms: p50 {latency_ms.get('p50', 0):.1f}, p99 {latency_ms.get('p99', 0):.1f},"
        f" max {latency_ms.get('max', 0):.1f}",
        f"faults: {sum(faults.values())} ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})",  # noqa: E501
    ]
    for ledger in ledgers:
        lines.append(
            f"group {ledger.group}: handled {ledger.handled}, lost {len(ledger.lost)}, "
            f"extra stream entries {len(ledger.extra_entries)}, doubled {ledger.doubled} "
            f"(explained by a SIGKILLed holder or a failover {ledger.explained}, unexplained "
            f"{len(ledger.unexplained)}), killed mid-handler {ledger.killed_mid_handler}, "
            f"never sent {len(ledger.unknown)}"
        )
        for label, ids in (("lost", ledger.lost), ("unexplained", ledger.unexplained),
                           ("extra entries", ledger.extra_entries)):  # fmt: skip
            if ids:
                lines.append(f"  {label}: {' '.join(ids[:20])}{' …' if len(ids) > 20 else ''}")
    lines.append(f"dead-lettered: {dict(sorted(dlq.items()))}")
    lines.append(f"Redis data set per retained stream entry (end): {redis_bytes_per_entry:.0f} B")
    lines.append("growth after warm-up (least-squares slope per hour; limit):")
    for verdict in growth:
        lines.append(
            f"  {'ok  ' if verdict.ok else 'FAIL'} {verdict.series}: {verdict.slope:+.1f}"
            f" ± {verdict.stderr:.1f}/h "
            f"(limit {verdict.limit:.0f}; {verdict.first:.0f} -> {verdict.last:.0f} over "
            f"{verdict.samples} samples)"
        )
    return "\n".join(lines) + "\n"
