"""How much memory a relay process may use, and the body budget that follows from it.

Bodies are read before they are verified, so anyone can make the relay hold them: hundreds
of large bodies, none ever finished. What they may hold is therefore derived from the
memory the process may use (``RELAY_MEMORY_LIMIT``; by default the container's cgroup
limit, else the manifests' 256 MiB) rather than from RELAY_MAX_IN_FLIGHT x
RELAY_MAX_BODY_BYTES, which is 512 MiB and got the container OOM-killed. Beyond the budget
a body is answered ``503 overloaded`` and its connection closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_MEMORY_LIMIT = 256 * MiB  # the container limit in deploy/base/deployment.yaml
# An idle relay process is ~70 MiB (interpreter, libraries, Redis pool); the rest of the
# reserve covers connections, verified bodies being parsed and answers being written.
RESERVED_BYTES = 96 * MiB
# While a body's chunks are joined it exists twice; its budget share counts both copies.
COPIES = 2
# The budget counts every byte a sender sent, request line and headers too.
HEAD_BYTES = 64 * KiB
CGROUP = Path("/sys/fs/cgroup")
_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a number near 2**63

_SIZE = re.compile(r"(\d+)\s*(ki|mi|gi|ti|k|m|g|t|b)?", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": KiB,
    "mi": MiB,
    "gi": GiB,
    "ti": 1024 * GiB,
}


def parse_size(value: str | int) -> int:
    """Bytes from ``268435456``, ``256Mi``, ``1Gi`` or ``300M`` (Kubernetes' quantities)."""
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError("is not a size in bytes (e.g. 268435456, 256Mi, 1Gi)")
    number, unit = match.groups()
    return int(number) * _UNITS[unit.lower() if unit else None]


def cgroup_memory_limit(root: Path = CGROUP) -> int | None:
    """The container's memory limit (cgroup v2 ``memory.max``, else v1), None if unlimited."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text == "max":
            return None
        try:
            value = int(text)
        except ValueError:
            continue
        return value if value < _UNLIMITED else None
    return None


def default_memory_limit() -> int:
    return cgroup_memory_limit() or DEFAULT_MEMORY_LIMIT


@dataclass(frozen=True)
class MemoryPlan:
    """The memory of one serving process and what bodies being received may hold of it."""

    limit: int  # the whole container's (RELAY_MEMORY_LIMIT)
    workers: int  # RELAY_WORKERS: the processes sharing it
    max_body_bytes: int
    max_in_flight: int

    @property
    def per_process(self) -> int:
        return self.limit // self.workers

    @property
    def fitting_budget(self) -> int:
        """What bodies may hold so that the process stays within its share."""
        return max(0, (self.per_process - RESERVED_BYTES) // COPIES)

    @property
    def body_budget(self) -> int:
        """The budget in force: never more than RELAY_MAX_IN_FLIGHT bodies, never less
        than one (a relay that refused every full-size body would be no relay)."""
        one = self.max_body_bytes + HEAD_BYTES
        return max(min(self.fitting_budget, self.max_in_flight * one), one)

    def problems(self) -> list[str]:
        """Why this plan cannot keep the process within its memory: for a start-up warning."""
        if self.fitting_budget >= self.max_body_bytes + HEAD_BYTES:
            return []
        return [
            f"RELAY_MEMORY_LIMIT={self.limit} ({self.limit // MiB} MiB) over "
            f"RELAY_WORKERS={self.workers} leaves {self.fitting_budget // MiB} MiB per process "
            f"for bodies being received (each process needs {RESERVED_BYTES // MiB} MiB "
            f"besides), less than one RELAY_MAX_BODY_BYTES={self.max_body_bytes} body held "
            f"twice: raise the container's memory, or lower RELAY_MAX_BODY_BYTES or "
            f"RELAY_WORKERS; a burst of large bodies can now exceed the limit"
        ]
