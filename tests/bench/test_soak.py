"""The soak (bench/soak.py) in two minutes: real Redis on AOF, two relay replicas, two
groups of two workers, every fault in turn. Its assertions are the ledger (nothing lost,
nothing doubled without a SIGKILLed holder, nothing dead-lettered) and growth no noise of
a short run can explain (the hour-limits times 20), never timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.process, pytest.mark.chaos]
ROOT = Path(__file__).resolve().parents[2]
FAULTS = {"relay-kill", "relay-term", "worker-kill", "redis-restart"}


def test_two_minutes_with_every_fault_lose_nothing_and_grow_nothing(tmp_path: Path) -> None:
    command = [
        sys.executable, "bench/soak.py", "--duration", "120", "--rate", "30",
        "--fault-every", "5", "--warmup", "45", "--sample-every", "3", "--maxlen", "1000",
        "--dedupe-ttl", "30", "--claim-idle", "5", "--limit-factor", "20", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=480)
    report = (tmp_path / "report.txt").read_text() if (tmp_path / "report.txt").exists() else ""
    assert (tmp_path / "summary.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())

    assert set(summary["faults"]) == FAULTS, report  # every kind of fault happened
    assert sum(kill["held"] for kill in summary["worker_kills"]) >= 1, report  # mid-handler
    assert summary["sent"] == summary["accepted"] > 3000, report
    for group in ("audit", "billing"):
        ledger = summary["groups"][group]
        assert ledger["handled"] == summary["accepted"], report
        assert ledger["lost"] == ledger["extra_entries"] == ledger["never_sent"] == 0, report
        assert ledger["doubled"] == ledger["explained"], report
    assert not any(summary["dlq"].values()), report
    growing = [series for series, g in summary["growth"].items() if not g["ok"]]
    assert growing == [], report
    assert len(summary["growth"]) >= 13, report  # every series was sampled and judged
    assert summary["problems"] == [], report
    assert summary["passed"] and done.returncode == 0, report
