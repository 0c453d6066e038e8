"""Claims across consumers: the claim loop takes over entries idle on a consumer that died
(``XAUTOCLAIM``), the heartbeat keeps this consumer's own entries claimed while their
handlers run."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from relay.redis.errors import ResponseError
from relay.worker.claims import TakeOverRound
from relay.worker.intake import TRANSIENT, group_gone, intake_loop

if TYPE_CHECKING:
    from relay.worker.runtime import Worker


async def claim_loop(worker: Worker) -> None:
    """Take over idle entries, walking the pending list with ``XAUTOCLAIM``'s cursor
    for as long as there is room and something to take; rest between full scans."""
    interval = max(min(worker.claim_idle / 2, 30.0), 0.05)

    async def fetch(room: int) -> TakeOverRound:
        return await worker.claims.take_over(int(worker.claim_idle * 1000), room)

    async def deliver(taken: TakeOverRound) -> None:
        for entry_id in taken.gone:  # acknowledged by the take-over
            if entry_id in worker.capacity.held:
                worker.gone.add(entry_id)  # ours: lost only if its handler fails
            else:
                await worker.lost(entry_id, "deleted while pending", ack=False)
        for claimed in taken.claimed:
            worker.series.taken_over.inc()
            worker.spawn(claimed.entry_id, claimed.fields, attempt=claimed.deliveries)
            worker.log.info("entry_taken_over", **worker.entry(claimed.entry_id))
        if taken.finished and not taken.claimed:
            await worker.or_stop(asyncio.sleep(interval))

    await intake_loop(worker, "take_over", fetch, deliver)


async def heartbeat_loop(worker: Worker) -> None:
    interval = max(worker.claim_idle / 3, 0.05)
    while True:  # through the drain too: until the last handler has finished
        await asyncio.sleep(interval)
        try:
            kept = await worker.claims.keep(sorted(worker.capacity.held))
        except TRANSIENT:
            continue
        except ResponseError as exc:
            if group_gone(exc):
                continue  # the intake loops recreate it
            raise
        for entry_id in kept.lost:
            if entry_id in worker.capacity.held:  # not just acknowledged meanwhile
                worker.log.warning("entry_no_longer_ours", **worker.entry(entry_id))
        worker.gone.update(kept.gone)
