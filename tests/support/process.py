"""A ``relay`` process started the way an operator starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.support.redis_server import free_port
from tests.support.waiting import wait_for_sync

T = TypeVar("T")


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

    def alive(self, check: Callable[[], T]) -> Callable[[], T]:
        """``check`` for :mod:`tests.support.waiting`, which fails at once if the process
        ended: a dead relay is not a state to wait out."""

        def checked() -> T:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ProcessExited(f"relay exited ({self.process.returncode}):\n{self.tail()}")
            return check()

        return checked

    def wait_for(self, check: Callable[[], T], *, what: str, within: float = 20) -> T:
        """:func:`~tests.support.waiting.wait_for_sync` while this process stays alive; a
        failure shows the end of its output."""
        return wait_for_sync(self.alive(check), what=what, within=within, context=self.tail)

    def wait_until(self, path: str, within: float = 15) -> None:
        """Until the admin port answers ``path`` with a success."""

        def answers() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}"):
                return True

        wait_for_sync(
            self.alive(answers),
            what=f"relay answering {path}",
            within=within,
            ignoring=(urllib.error.URLError, ConnectionError),
            context=self.tail,
        )

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

    def tail(self) -> str:
        """The end of the output: what a failure message shows."""
        return self.output()[-3000:]


class ProcessExited(AssertionError):
    """The process ended while a test waited on it."""
