"""A ``relay`` process started the way an operator starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.redis_server import free_port


class RelayProcess:
    def __init__(self, env: dict[str, str], *args: str, cwd: str | None = None) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ANYFORMAT_"))},
            "RELAY_HOST": "127.0.0.1",
            "RELAY_PORT": str(self.port),
            "RELAY_ADMIN_PORT": str(self.admin_port),
            **env,
        }
        self.args = args or ("run",)
        self.cwd = cwd or tempfile.gettempdir()  # no stray .env by default
        self.log = Path(tempfile.mkstemp(prefix="relay-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> RelayProcess:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )
        if wait_ready:
            self.wait_until("/readyz")
        return self

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_until(self, path: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"relay exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}"):
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise AssertionError(f"relay not ready within {timeout}s:\n{self.output()}")

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")
