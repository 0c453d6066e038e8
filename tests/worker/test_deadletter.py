"""Dead letters: moves that survive crashes, replay exactly once, purge."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from relay.redis.keys import dedupe_key
from relay.worker import Event, RetryPolicy
from relay.worker.deadletter import (
    DeadLetter,
    dead_letter,
    list_dead,
    purge,
    replay,
    replay_marks_key,
)
from tests.support.entry_schemas import dead_letter_fields
from tests.worker.conftest import GROUP, STREAM, StartWorker, eventually, publish

DLQ = f"{STREAM}:dlq"


async def read_one(client: Redis) -> tuple[str, dict[str, bytes]]:
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    [[_, [(entry_id, fields)]]] = await client.xreadgroup(GROUP, "c", {STREAM: ">"}, count=1)
    return entry_id.decode(), {k.decode(): v for k, v in fields.items()}


async def replay_cut_before_the_removal(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, bytes], DeadLetter]:
    """Dead-letter one published entry and replay it, the connection lost before the XDEL
    that removes it from the DLQ; the entry's fields and its dead letter."""
    await publish(client)
    entry_id, fields = await read_one(client)
    await dead_letter(client, STREAM, GROUP, entry_id, fields, error="boom", attempts=5)
    [letter] = await list_dead(client, STREAM, 10)

    async def connection_lost(*args: object) -> None:
        raise ConnectionError("connection lost before XDEL")

    monkeypatch.setattr(client, "xdel", connection_lost)
    with pytest.raises(ConnectionError):
        await replay(client, STREAM, letter.dlq_id)
    monkeypatch.undo()
    return fields, letter


async def test_a_move_interrupted_before_the_ack_is_finished_not_doubled(client: Redis) -> None:
    await publish(client)
    entry_id, fields = await read_one(client)
    await dead_letter(client, STREAM, GROUP, entry_id, fields, error="boom", attempts=5)
    # As if the process died after the append and before the ack: the entry is pending again.
    await client.xclaim(STREAM, GROUP, "c", 0, [entry_id])
    await client.execute_command("XGROUP", "SETID", STREAM, GROUP, "0")
    await dead_letter(client, STREAM, GROUP, entry_id, fields, error="boom", attempts=5)
    assert await client.xlen(DLQ) == 1
    assert (await client.xpending(STREAM, GROUP))["pending"] == 0


async def test_replay_puts_the_entry_back_once_and_empties_the_dlq(
    client: Redis, start_worker: StartWorker
) -> None:
    await publish(client)
    handled: list[Event] = []
    failing = True

    async def handler(event: Event) -> None:
        if failing:
            raise RuntimeError("not yet")
        handled.append(event)

    worker = await start_worker(handler, retry=RetryPolicy(max_attempts=2, backoff_base=0.01))
    await eventually(lambda: _length(client, DLQ, 1))
    [letter] = await list_dead(client, STREAM, 10)
    failing = False

    assert await replay(client, STREAM, letter.dlq_id) == "replayed"
    assert await replay(client, STREAM, letter.dlq_id) == "absent"
    await eventually(lambda: asyncio.sleep(0, len(handled) == 1))
    await worker.stop()
    assert await client.xlen(DLQ) == 0
    assert await client.xlen(STREAM) == 2  # the original and its one replay
    assert handled[0].id == letter.text("id")
    assert handled[0].payload["data"]["extraction_id"] == "ex-0"
    assert handled[0].attempt == 1
    replayed = (await client.xrange(STREAM))[-1][1]
    assert b"error" not in replayed and b"original_id" not in replayed
    assert replayed[b"replayed_from"] == letter.dlq_id.encode()
    original = (await client.xrange(STREAM))[0][1]
    assert {k: v for k, v in replayed.items() if k != b"replayed_from"} == original


async def test_a_replay_interrupted_before_the_removal_is_finished_not_doubled(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, letter = await replay_cut_before_the_removal(client, monkeypatch)
    assert await client.xlen(STREAM) == 2 and await client.xlen(DLQ) == 1

    assert await replay(client, STREAM, letter.dlq_id) == "finished"
    assert await client.xlen(STREAM) == 2 and await client.xlen(DLQ) == 0


async def test_purge_all_or_before_a_time(client: Redis) -> None:
    for n in range(3):
        await client.xadd(DLQ, dead_letter_fields(n), id=f"{1000 + n}-0")
    await client.xadd(DLQ, dead_letter_fields(9), id="5000-0")
    assert await purge(client, STREAM, before_ms=2000) == 3
    assert [e for e, _ in await client.xrange(DLQ)] == [b"5000-0"]
    assert await purge(client, STREAM, before_ms=None) == 1
    assert await client.xlen(DLQ) == 0


async def _length(client: Redis, stream: str, n: int) -> bool:
    return int(await client.xlen(stream)) == n


async def test_replay_marks_outlive_the_ingest_dedupe_window(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay interrupted before the DLQ removal, finished after RELAY_DEDUPE_TTL has
    expired the stream's dedupe set, still appends nothing twice: its mark has its own key,
    kept 30 days."""
    fields, letter = await replay_cut_before_the_removal(client, monkeypatch)

    # The ingest window passes: its dedupe set expires, and later deliveries trim it.
    await client.delete(dedupe_key(STREAM))
    await publish(client)
    assert await client.exists(replay_marks_key(STREAM))
    ttl_days = await client.pttl(replay_marks_key(STREAM)) / 86_400_000
    assert 29.9 < ttl_days <= 30

    assert await replay(client, STREAM, letter.dlq_id) == "finished"
    ids = [fields[b"id"] for _, fields in await client.xrange(STREAM)]
    assert ids.count(fields["id"]) == 2  # the original and exactly one replay
    assert await client.xlen(DLQ) == 0
