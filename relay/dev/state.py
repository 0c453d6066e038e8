"""What `relay dev` tells `relay trigger` and `relay tail`: where the relay and Redis are.

A small JSON file in the user's cache directory, readable by its owner only (it holds the
development secret).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import BaseModel


class DevState(BaseModel):
    url: str
    secret: str
    scheme: str
    hmac_header: str
    redis_url: str
    # The `relay dev` process: while it runs, the other commands use its Redis.
    pid: int | None = None
    ports: list[int] = []

    def running(self) -> bool:
        """Whether the `relay dev` that wrote this still runs."""
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process of that pid: not ours
            return False
        return True


def state_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anyformat-relay" / "dev.json"


def save_state(state: DevState) -> Path:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(state.model_dump_json(indent=2))
    return path


def port_taken(host: str, port: int) -> bool:
    """Whether ``host:port`` is bound already (checked before anything is rewritten)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def load_state() -> DevState | None:
    try:
        return DevState.model_validate_json(state_path().read_text())
    except (OSError, ValueError):
        return None
