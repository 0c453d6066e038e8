"""The read loop: new entries of the group (``XREADGROUP … >``), as many as can start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.worker.intake import intake_loop

if TYPE_CHECKING:
    from relay.worker.runtime import Worker

Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def read_loop(worker: Worker) -> None:
    async def fetch(count: int) -> Entries:
        reply: Any = await worker.redis.xreadgroup(
            worker.group, worker.consumer, {worker.stream: ">"},
            count=count, block=worker.block_ms,
        )  # fmt: skip
        entries: Entries = reply[0][1] if reply else []
        return entries

    async def deliver(entries: Entries) -> None:
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            worker.last_read = entry_id
            worker.spawn(entry_id, fields, attempt=1)

    await intake_loop(worker, "read", fetch, deliver)
