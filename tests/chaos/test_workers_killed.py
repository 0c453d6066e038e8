"""Workers killed with SIGKILL under load: every entry handled at least once, nothing left
pending, and the dead-letter stream holding exactly the poison entries, once each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.chaos, pytest.mark.process]
ROOT = str(Path(__file__).resolve().parents[2])
STREAM, GROUP = "anyformat:events", "chaos"


def worker(server: RedisServer, consumer: str, claim_idle: str = "1") -> RelayProcess:
    return RelayProcess(
        {"RELAY_REDIS_URL": server.url, "TEST_REDIS_URL": server.url,
         "RELAY_LOG_LEVEL": "warning", "HANDLER_SECONDS": "0.1"},
        "worker", "--stream", STREAM, "--group", GROUP, "--handler",
        "tests.support.handlers:chaos", "--start-id", "0", "--concurrency", "8",
        "--max-attempts", "3", "--backoff-base", "0.05", "--backoff-max", "0.2",
        "--claim-idle", claim_idle, "--consumer", consumer,
        cwd=ROOT,
    )  # fmt: skip


def holding(client: redis.Redis, consumer: str) -> int:
    """Entries pending on ``consumer`` now (0 before the group exists)."""
    try:
        summary = client.xpending(STREAM, GROUP)
    except redis.ResponseError:  # NOGROUP: no worker has created the group yet
        return 0
    counts = {item["name"].decode(): int(item["pending"]) for item in summary["consumers"]}
    return counts.get(consumer, 0)


def test_workers_killed_under_load(own_redis: RedisServer, say: Callable[[str], None]) -> None:
    client = own_redis.client()
    ids = []
    for n in range(300):
        extraction = f"ex-{n}-poison" if n % 50 == 7 else f"ex-{n}"
        payload = json.dumps(
            {"event": "extraction.completed", "data": {"extraction_id": extraction}}
        )
        fields = {"id": f"msg_{n}", "event": "extraction.completed", "payload": payload,
                  "received_at": "0", "extraction_id": extraction, "workflow_id": ""}  # fmt: skip
        ids.append(client.xadd(STREAM, fields).decode())
    poison = {entry for n, entry in enumerate(ids) if n % 50 == 7}

    steady = worker(own_redis, "steady")
    # Victims take over nothing (a long claim idle): each entry is delivered to one victim
    # at most, then to the survivor, so no healthy entry runs out of its three attempts.
    victims = [worker(own_redis, f"victim-{n}", claim_idle="600") for n in range(3)]
    kills = 0
    try:
        for n, victim in enumerate(victims):
            victim.start(wait_ready=False)
            # SIGKILL mid-work, once it holds entries: they wait for a takeover.
            victim.wait_for(lambda: holding(client, f"victim-{n}") > 0,  # noqa: B023
                            what=f"victim-{n} holding entries", within=30)  # fmt: skip
            victim.kill()
            kills += 1
        # The survivor starts last, so every victim finds a backlog to take from however
        # slowly this machine starts processes; it takes over what the victims held.
        steady.start(wait_ready=False)
        steady.wait_for(
            lambda: (
                client.xpending(STREAM, GROUP)["pending"] == 0
                and client.xlen(f"{STREAM}:dlq") == len(poison)
            ),
            what="nothing pending, every poison entry dead-lettered",
            within=60,
        )
    finally:
        for victim in victims:
            victim.kill()
        if steady.process is not None:
            assert steady.terminate() == 0

    handled = [json.loads(item) for item in client.lrange("handled", 0, -1)]
    handled_entries = {item["entry_id"] for item in handled}
    dead = [fields[b"original_id"].decode() for _, fields in client.xrange(f"{STREAM}:dlq")]
    repeats = len(handled) - len(handled_entries)
    taken_over = sum(item["attempt"] > 1 for item in handled)
    pending = client.xpending(STREAM, GROUP)["pending"]
    say(
        f"entries={len(ids)} kills={kills} handled={len(handled)} repeats={repeats} "
        f"taken_over={taken_over} dead_lettered={len(dead)} pending={pending}"
    )
    assert taken_over > 0  # the kills left entries that another consumer finished
    assert handled_entries == set(ids) - poison  # at least once, every healthy entry
    assert sorted(dead) == sorted(poison)  # exactly the poison entries, once each
    assert client.xpending(STREAM, GROUP)["pending"] == 0  # everything acknowledged
