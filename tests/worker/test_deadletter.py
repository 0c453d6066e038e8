"""Dead letters: moves that survive crashes, replay exactly once, purge."""

from __future__ import annotations

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
from tests.support.waiting import wait_for
from tests.worker.conftest import GROUP, STREAM, StartWorker, publish

DLQ = f"{STREAM}:dlq"


async def read_one(backend_client: Redis) -> tuple[str, dict[str, bytes]]:
    await backend_client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    [[_, [(entry_id, fields)]]] = await backend_client.xreadgroup(
        GROUP, "c", {STREAM: ">"}, count=1
    )
    return entry_id.decode(), {k.decode(): v for k, v in fields.items()}


async def replay_cut_before_the_removal(
    backend_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, bytes], DeadLetter]:
    """Dead-letter one published entry and replay it, the connection lost before the XDEL
    that removes it from the DLQ; the entry's fields and its dead letter."""
    await publish(backend_client)
    entry_id, fields = await read_one(backend_client)
    await dead_letter(backend_client, STREAM, GROUP, entry_id, fields, error="boom", attempts=5)
    [letter] = await list_dead(backend_client, STREAM, 10)

    async def connection_lost(*args: object) -> None:
        raise ConnectionError("connection lost before XDEL")

    monkeypatch.setattr(backend_client, "xdel", connection_lost)
    with pytest.raises(ConnectionError):
        await replay(backend_client, STREAM, letter.dlq_id)
    monkeypatch.undo()
    return fields, letter


async def test_a_move_interrupted_before_the_ack_is_finished_not_doubled(
    backend_client: Redis,
) -> None:
    await publish(backend_client)
    entry_id, fields = await read_one(backend_client)
    await dead_letter(backend_client, STREAM, GROUP, entry_id, fields, error="boom", attempts=5)
    # As if the process died after the append and before the ack: the entry is pending again.
    await backend_client.xclaim(STREAM, GROUP, "c", 0, [entry_id])
    await backend_client.execute_command("XGROUP", "SETID", STREAM, GROUP, "0")
    await dead_letter(backend_client, STREAM, GROUP, entry_id, fields, error="boom", attempts=5)
    assert await backend_client.xlen(DLQ) == 1
    assert (await backend_client.xpending(STREAM, GROUP))["pending"] == 0


async def test_replay_puts_the_entry_back_once_and_empties_the_dlq(
    backend_client: Redis, start_worker: StartWorker
) -> None:
    await publish(backend_client)
    handled: list[Event] = []
    failing = True

    async def handler(event: Event) -> None:
        if failing:
            raise RuntimeError("not yet")
        handled.append(event)

    worker = await start_worker(handler, retry=RetryPolicy(max_attempts=2, backoff_base=0.01))
    await wait_for(lambda: _length(backend_client, DLQ, 1), what="the event dead-lettered")
    [letter] = await list_dead(backend_client, STREAM, 10)
    failing = False

    assert await replay(backend_client, STREAM, letter.dlq_id) == "replayed"
    assert await replay(backend_client, STREAM, letter.dlq_id) == "absent"
    await wait_for(lambda: len(handled) == 1, what="the replayed event handled")
    await worker.stop()
    assert await backend_client.xlen(DLQ) == 0
    assert await backend_client.xlen(STREAM) == 2  # the original and its one replay
    assert handled[0].id == letter.text("id")
    assert handled[0].payload["data"]["extraction_id"] == "ex-0"
    assert handled[0].attempt == 1
    replayed = (await backend_client.xrange(STREAM))[-1][1]
    assert b"error" not in replayed and b"original_id" not in replayed
    assert replayed[b"replayed_from"] == letter.dlq_id.encode()
    original = (await backend_client.xrange(STREAM))[0][1]
    assert {k: v for k, v in replayed.items() if k != b"replayed_from"} == original


async def test_a_replay_interrupted_before_the_removal_is_finished_not_doubled(
    backend_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, letter = await replay_cut_before_the_removal(backend_client, monkeypatch)
    assert await backend_client.xlen(STREAM) == 2 and await backend_client.xlen(DLQ) == 1

    assert await replay(backend_client, STREAM, letter.dlq_id) == "finished"
    assert await backend_client.xlen(STREAM) == 2 and await backend_client.xlen(DLQ) == 0


async def test_purge_all_or_before_a_time(backend_client: Redis) -> None:
    for n in range(3):
        await backend_client.xadd(DLQ, dead_letter_fields(n), id=f"{1000 + n}-0")
    await backend_client.xadd(DLQ, dead_letter_fields(9), id="5000-0")
    assert await purge(backend_client, STREAM, before_ms=2000) == 3
    assert [e for e, _ in await backend_client.xrange(DLQ)] == [b"5000-0"]
    assert await purge(backend_client, STREAM, before_ms=None) == 1
    assert await backend_client.xlen(DLQ) == 0


async def _length(backend_client: Redis, stream: str, n: int) -> bool:
    return int(await backend_client.xlen(stream)) == n


async def test_replay_marks_outlive_the_ingest_dedupe_window(
    backend_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay interrupted before the DLQ removal, finished after RELAY_DEDUPE_TTL has
    expired the stream's dedupe set, still appends nothing twice: its mark has its own key,
    kept 30 days."""
    fields, letter = await replay_cut_before_the_removal(backend_client, monkeypatch)

    # The ingest window passes: its dedupe set expires, and later deliveries trim it.
    await backend_client.delete(dedupe_key(STREAM))
    await publish(backend_client)
    assert await backend_client.exists(replay_marks_key(STREAM))
    ttl_days = await backend_client.pttl(replay_marks_key(STREAM)) / 86_400_000
    assert 29.9 < ttl_days <= 30

    assert await replay(backend_client, STREAM, letter.dlq_id) == "finished"
    ids = [fields[b"id"] for _, fields in await backend_client.xrange(STREAM)]
    assert ids.count(fields["id"]) == 2  # the original and exactly one replay
    assert await backend_client.xlen(DLQ) == 0
