"""The soak's handler (``relay worker --handler bench.soak_handler:handle``).

Each worker process appends to its own ledger file in ``SOAK_LEDGER_DIR``: ``S`` when a
handler starts (the worker holds the entry), ``D`` when it finishes (about to be
acknowledged). A file ending in ``S`` lines without their ``D`` is a worker killed
mid-handler, and names exactly the entries it held. Lines go to the kernel with one
``write`` each (``O_APPEND``), so a SIGKILL loses none that were written.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from relay import Event

_fd: int | None = None


def _ledger() -> int:
    global _fd
    if _fd is None:
        directory = os.environ["SOAK_LEDGER_DIR"]
        name = f"{os.environ['SOAK_GROUP']}.{os.environ['SOAK_CONSUMER']}.{os.getpid()}.log"
        _fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    return _fd


def _write(kind: str, event: Event) -> None:
    at = f"{time.time():.3f}"
    line = f"{kind} {event.id} {event.entry_id} {event.attempt} {at} {event.received_at}\n"
    os.write(_ledger(), line.encode())


async def handle(event: Event) -> None:
    """Take a few milliseconds of "work" (so kills land mid-handler), then succeed."""
    _write("S", event)
    await asyncio.sleep(random.uniform(0.005, 0.05))
    _write("D", event)
