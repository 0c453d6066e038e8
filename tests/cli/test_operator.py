"""`relay events show/find` as an operator uses them, against a real redis-server."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from click.testing import CliRunner
from redis.asyncio import Redis

from relay.cli import main
from relay.streams.marks import content_mark
from relay.streams.writer import Entry, FanoutWriter
from tests.support.entry_schemas import delivery_body

STREAMS = ["anyformat:events", "anyformat:events:extraction.completed"]


@pytest.fixture
def cli(redis_url: str) -> CliRunner:
    return CliRunner(env={"RELAY_REDIS_URL": redis_url, "RELAY_WEBHOOK_SECRET": "whsec_eA=="})


def write(redis_url: str, message_id: str, extraction_id: str) -> None:
    async def go() -> None:
        client = Redis.from_url(redis_url)
        mark = content_mark("extraction.completed", extraction_id, "processed")
        entry = Entry(
            message_id,
            "extraction.completed",
            delivery_body(extraction_id=extraction_id),
            1_711_281_750_000,
            extraction_id,
            "",
            mark,
        )
        await FanoutWriter(client, dedupe_ttl=60).write(entry, STREAMS)
        await client.aclose()

    asyncio.run(go())


def test_events_show_names_every_stream_and_group(
    cli: CliRunner, redis_url: str, redis_sync: redis.Redis
) -> None:
    redis_sync.xgroup_create(STREAMS[0], "billing", id="0", mkstream=True)
    write(redis_url, "msg_1", "ex-1")
    result = cli.invoke(main, ["events", "show", "msg_1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("msg_1  extraction.completed  source webhook  received 2024-03-24T")
    assert lines[1].startswith(f"{STREAMS[0]}  entry ")
    assert lines[2] == "  billing  waiting"
    assert lines[3].startswith(f"{STREAMS[1]}  entry ")
    assert lines[4] == "  (no consumer group)"
    as_json = json.loads(cli.invoke(main, ["events", "show", "msg_1", "--json"]).output)
    assert as_json["id"] == "msg_1"
    assert [s["stream"] for s in as_json["streams"]] == STREAMS


def test_events_show_of_an_unknown_id_fails_in_one_line(cli: CliRunner, redis_url: str) -> None:
    write(redis_url, "msg_1", "ex-1")
    result = cli.invoke(main, ["events", "show", "msg_2"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no event 'msg_2' in the last RELAY_DEDUPE_TTL")


def test_events_find_lists_an_extractions_events(cli: CliRunner, redis_url: str) -> None:
    write(redis_url, "msg_1", "ex-1")
    write(redis_url, "msg_2", "ex-2")
    result = cli.invoke(main, ["events", "find", "--extraction-id", "ex-1"])
    assert result.exit_code == 0, result.output
    assert result.output == "2024-03-24T12:02:30.000Z  msg_1  extraction.completed\n"
    found = json.loads(
        cli.invoke(main, ["events", "find", "--extraction-id", "ex-2", "--json"]).output
    )
    assert [e["id"] for e in found["events"]] == ["msg_2"]
    nothing = cli.invoke(main, ["events", "find", "--extraction-id", "ex-3"])
    assert nothing.output.startswith("no event for extraction 'ex-3'")


def test_pause_and_resume_a_group(cli: CliRunner, redis_sync: redis.Redis) -> None:
    from relay.redis.keys import pause_key

    stream = STREAMS[0]
    paused = cli.invoke(main, ["pause", stream, "billing"])
    assert paused.exit_code == 0, paused.output
    assert paused.output.startswith(f"paused billing of {stream}")
    assert redis_sync.hexists(pause_key(stream), "billing")
    assert "paused already" in cli.invoke(main, ["pause", stream, "billing"]).output
    resumed = cli.invoke(main, ["resume", stream, "billing"])
    assert resumed.output == f"resumed billing of {stream}\n"
    assert not redis_sync.exists(pause_key(stream))
    assert "was not paused" in cli.invoke(main, ["resume", stream, "billing"]).output
