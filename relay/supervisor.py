"""``RELAY_WORKERS=N``: N serving processes sharing the ports (``SO_REUSEPORT``).

The kernel spreads connections over the processes, so one pod uses all its cores. This
process only supervises: it starts the N ``relay run`` processes, forwards SIGTERM/SIGINT
to them, and stops them all (with the failing one's exit code) if one dies, so that the
orchestrator restarts the pod as a whole. Metrics add up across processes through
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``); only process 0
registers with AnyFormat, every process reads the secret from the record.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

import structlog

log = structlog.get_logger("relay.supervisor")


def supervise(workers: int) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="relay-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index in range(workers):
        child = subprocess.Popen(
            [sys.executable, "-m", "relay", "run"],
            env={**env, "RELAY_WORKER_INDEX": str(index)},
        )
        children[index] = child
    log.info("supervisor_started", workers=workers, pids=[c.pid for c in children.values()])
    exit_code = 0
    try:
        while any(child.poll() is None for child in children.values()):
            for index, child in children.items():
                code = child.poll()
                if code is not None and not stopping:
                    log.error("worker_process_exited", index=index, pid=child.pid, code=code)
                    exit_code = code or 1
                    forward(signal.SIGTERM, None)
            time.sleep(0.1)
        if stopping and exit_code == 0:
            exit_code = max((child.returncode or 0) for child in children.values())
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("supervisor_stopped", code=exit_code)
    return exit_code
