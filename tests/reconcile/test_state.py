"""The heartbeat and gap record the relays share, on a real Redis: edges and races."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from relay.reconcile.state import SharedState
from relay.reconcile.window import GAP_MARGIN_S, GAP_THRESHOLD_S

T = 1_800_000_000.0


async def beat(state: SharedState, now: float) -> float | None:
    return await state.beat(now, GAP_THRESHOLD_S, GAP_MARGIN_S)


async def test_a_heartbeat_older_than_30_s_records_a_gap_from_5_minutes_before_it(
    client: Redis,
) -> None:
    state = SharedState(client, "anyformat")
    assert await beat(state, T) is None  # the first relay ever: no gap, the epoch
    assert await beat(state, T + GAP_THRESHOLD_S) is None  # 30 s exactly: still no gap
    assert (await state.read()).gap_since is None
    assert await beat(state, T + 2 * GAP_THRESHOLD_S + 0.001) == T + GAP_THRESHOLD_S
    recorded = await state.read()
    assert recorded.gap_since == T + GAP_THRESHOLD_S - GAP_MARGIN_S
    assert recorded.heartbeat == T + 2 * GAP_THRESHOLD_S + 0.001 and recorded.epoch == T


async def test_a_late_beat_never_moves_the_heartbeat_back(client: Redis) -> None:
    state = SharedState(client, "anyformat")
    await beat(state, T)
    await beat(state, T - 5)  # a relay whose clock is behind
    assert (await state.read()).heartbeat == T


async def test_relays_starting_together_after_a_gap_record_it_once(client: Redis) -> None:
    state = SharedState(client, "anyformat")
    await beat(state, T)
    found = await asyncio.gather(*(beat(state, T + 3600 + i / 1000) for i in range(10)))
    assert [f for f in found if f is not None] == [T]  # only the first saw the old beat


async def test_a_finished_sweep_clears_the_gap_it_covered_and_only_that(client: Redis) -> None:
    state = SharedState(client, "anyformat")
    await beat(state, T)
    await beat(state, T + 3600)  # gap from T - 300, found at T + 3600
    # A sweep that began before the gap was found does not cover it.
    assert not await state.finish(T - 300, T + 3599, T + 3610)
    assert (await state.read()).gap_since == T - 300
    # Nor one that starts after the gap began.
    assert not await state.finish(T - 299, T + 3600, T + 3610)
    assert await state.finish(T - 300, T + 3600, T + 3610)
    after = await state.read()
    assert after.gap_since is None and after.last_until == T + 3600
