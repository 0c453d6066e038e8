"""How much a worker takes on: entries held (running, waiting for a slot or for a retry)
are capped, and at most ``concurrency`` handlers run at once.

The cap is what keeps a failing dependency from turning into an unbounded backlog in one
process: the read and take-over loops wait for room instead of taking more entries.
"""

from __future__ import annotations

import asyncio


class Capacity:
    def __init__(self, concurrency: int, max_held: int) -> None:
        if concurrency < 1 or max_held < concurrency:
            raise ValueError("need concurrency >= 1 and max_held >= concurrency")
        self.concurrency = concurrency
        self.max_held = max_held
        self.held: set[str] = set()
        self.running = 0
        self._reserved = 0  # room promised to fetches in progress
        self._changed = asyncio.Event()

    @property
    def room(self) -> int:
        """Entries that may still be taken on."""
        return self.max_held - len(self.held) - self._reserved

    @property
    def free_slots(self) -> int:
        return self.concurrency - self.running

    async def reserve(self) -> int:
        """Wait until entries may be taken on and start at once, and reserve room for them
        while they are fetched (so two fetches cannot both fill the same room); how many.
        :meth:`unreserve` follows, once the fetched entries are held.

        Only the room is reserved, not the slots: a read blocked on a quiet stream must
        not stop the take-over from using free slots meanwhile. At worst one fetch's
        entries wait in this process for a slot; the held count never passes the cap."""
        while (startable := min(self.room, self.free_slots)) <= 0:
            await self._wait()
        self._reserved += startable
        return startable

    def unreserve(self, count: int) -> None:
        self._reserved -= count
        self._changed.set()

    def hold(self, entry_id: str) -> bool:
        """Take the entry on; False when it is held already (never run one entry twice)."""
        if entry_id in self.held:
            return False
        self.held.add(entry_id)
        return True

    def release(self, entry_id: str) -> None:
        self.held.discard(entry_id)
        self._changed.set()

    def try_acquire_slot(self) -> bool:
        if self.running >= self.concurrency:
            return False
        self.running += 1
        return True

    async def acquire_slot(self) -> None:
        while self.running >= self.concurrency:
            await self._wait()
        self.running += 1

    def release_slot(self) -> None:
        self.running -= 1
        self._changed.set()

    async def _wait(self) -> None:
        self._changed.clear()
        await self._changed.wait()
