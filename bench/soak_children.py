"""The soak's processes: ``relay run`` and ``relay worker`` children that can be killed and
started again alike, and what a worker's ledger file says it holds."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ANYFORMAT_"))}
    return {**base, "PYTHONPATH": str(ROOT), "RELAY_HOST": "127.0.0.1",
            "RELAY_LOG_LEVEL": "warning", **extra}  # fmt: skip


class Child:
    """One ``python -m relay …`` process that can be killed and started again alike."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], admin: int,
                 out: Path, cwd: Path) -> None:  # fmt: skip
        self.name, self.args, self.env, self.admin, self.out, self.cwd = (
            name, args, env, admin, out, cwd)  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.starts += 1
        with (self.out / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", "relay", *self.args], env=self.env, cwd=self.cwd,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        await wait_ready(f"http://127.0.0.1:{self.admin}/readyz", self)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def stop(self, signum: int, grace: float = 40) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        deadline = time.monotonic() + grace
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
            await asyncio.sleep(0.05)
        return self.process.returncode

    async def metrics(self, http: aiohttp.ClientSession) -> dict[str, float]:
        """The unlabelled (or summed) figures of its /metrics; empty when it does not answer."""
        try:
            async with http.get(f"http://127.0.0.1:{self.admin}/metrics") as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return {}
        figures: dict[str, float] = {}
        for name, value in re.findall(r"^([a-z_]+)(?:\{[^}]*\})? (\S+)$", text, re.M):
            figures[name] = figures.get(name, 0.0) + float(value)
        return figures


async def wait_ready(url: str, child: Child, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited while starting; see its log")
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready within {seconds}s")


def held_now(ledger_dir: Path, group: str, consumer: str, pid: int) -> int:
    """Entries this worker process is inside its handler for (``S`` without ``D``)."""
    path = ledger_dir / f"{group}.{consumer}.{pid}.log"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    lines = data[-20_000:].decode(errors="replace").splitlines()[1 if len(data) > 20_000 else 0 :]
    open_runs: set[str] = set()
    for line in lines:
        kind, _, rest = line.partition(" ")
        key = rest.split(" ", 2)[1] if rest.count(" ") >= 2 else rest
        (open_runs.add if kind == "S" else open_runs.discard)(key)
    return len(open_runs)
