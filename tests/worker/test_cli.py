"""`relay dlq …` and `relay stats` as an operator uses them."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner

from relay.cli import main
from relay.cli.workers import parse_before
from tests.support.entry_schemas import dead_letter_fields, delivery_body, relay_fields

STREAM = "anyformat:events"
DLQ = f"{STREAM}:dlq"


@pytest.fixture
def cli(redis_url: str) -> CliRunner:
    return CliRunner(env={"RELAY_REDIS_URL": redis_url})


def dead(client: redis.Redis, n: int) -> str:
    return client.xadd(DLQ, dead_letter_fields(n)).decode()


def test_dlq_list_shows_a_table_and_json(cli: CliRunner, redis_sync: redis.Redis) -> None:
    ids = [dead(redis_sync, n) for n in range(3)]
    result = cli.invoke(main, ["dlq", "list", STREAM, "--limit", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "DLQ_ID", "ORIGINAL_ID", "ID", "EVENT", "GROUP", "ATTEMPTS", "FAILED_AT", "ERROR",
    ]  # fmt: skip
    assert len(lines) == 4 and ids[0] in lines[1] and "failure number 0" in lines[1]
    assert lines[3] == f"more: relay dlq list {STREAM} --limit 2 --after {ids[1]}"
    last_page = cli.invoke(main, ["dlq", "list", STREAM, "--limit", "2", "--after", ids[1]])
    assert [line.split()[0] for line in last_page.output.splitlines()[1:]] == [ids[2]]
    as_json = json.loads(cli.invoke(main, ["dlq", "list", STREAM, "--json"]).output)
    assert [row["dlq_id"] for row in as_json] == ids
    assert as_json[0]["failed_at"] == "2024-03-24T12:02:40+00:00"
    assert as_json[0]["attempts"] == 5  # a number, not "5"


def test_dlq_list_pages_through_a_large_dlq_and_replay_all_takes_every_page(
    cli: CliRunner, redis_sync: redis.Redis
) -> None:
    with redis_sync.pipeline(transaction=False) as pipe:
        for n in range(2500):
            pipe.xadd(DLQ, dead_letter_fields(n))
        ids = [entry_id.decode() for entry_id in pipe.execute()]
    seen: list[str] = []
    after: list[str] = []
    while True:
        page = cli.invoke(main, ["dlq", "list", STREAM, "--json", "--limit", "1000", *after])
        rows = json.loads(page.output)
        if not rows:
            break
        seen += [row["dlq_id"] for row in rows]
        after = ["--after", rows[-1]["dlq_id"]]
    assert seen == ids  # every dead letter once, in order, over three pages

    result = cli.invoke(main, ["dlq", "replay", STREAM, "--all"])
    assert result.output.splitlines()[-1] == f"2500 replayed onto {STREAM}, 0 not found"
    assert redis_sync.xlen(STREAM) == 2500 and redis_sync.xlen(DLQ) == 0


def test_dlq_list_of_an_empty_dlq(cli: CliRunner) -> None:
    result = cli.invoke(main, ["dlq", "list", STREAM])
    assert (result.exit_code, result.output.strip()) == (0, f"no dead letters in {DLQ}")


def test_dlq_show_prints_every_field_and_the_payload(
    cli: CliRunner, redis_sync: redis.Redis
) -> None:
    dlq_id = dead(redis_sync, 7)
    result = cli.invoke(main, ["dlq", "show", STREAM, dlq_id])
    assert result.exit_code == 0
    assert "error: RuntimeError: failure number 7" in result.output
    assert '"extraction_id": "ex-7"' in result.output
    missing = cli.invoke(main, ["dlq", "show", STREAM, "1-1"])
    assert missing.exit_code == 1 and "no dead letter 1-1" in missing.output


def test_dlq_replay_by_id_and_all_twice_is_still_once(
    cli: CliRunner, redis_sync: redis.Redis
) -> None:
    first, _, _ = (dead(redis_sync, n) for n in range(3))
    result = cli.invoke(main, ["dlq", "replay", STREAM, "--id", first])
    assert (result.exit_code, f"{first}: replayed" in result.output) == (0, True)
    again = cli.invoke(main, ["dlq", "replay", STREAM, "--id", first])
    assert again.exit_code == 0 and f"{first}: absent" in again.output
    everything = cli.invoke(main, ["dlq", "replay", STREAM, "--all"])
    assert "2 replayed" in everything.output
    assert cli.invoke(main, ["dlq", "replay", STREAM, "--all"]).output.startswith("0 replayed")
    assert redis_sync.xlen(STREAM) == 3 and redis_sync.xlen(DLQ) == 0
    entry = redis_sync.xrange(STREAM)[0][1]
    assert entry[b"id"] == b"msg_0" and b"error" not in entry


def test_dlq_replay_needs_ids_or_all(cli: CliRunner) -> None:
    result = cli.invoke(main, ["dlq", "replay", STREAM])
    assert result.exit_code == 2 and "give --id ID" in result.output


def test_dlq_purge(cli: CliRunner, redis_sync: redis.Redis) -> None:
    redis_sync.xadd(DLQ, dead_letter_fields(0), id="1000-0")
    dead(redis_sync, 1)
    before = cli.invoke(main, ["dlq", "purge", STREAM, "--before", "1h", "--yes"])
    assert before.output.strip() == f"purged 1 dead letter(s) from {DLQ}"
    assert cli.invoke(main, ["dlq", "purge", STREAM, "--yes"]).output.startswith("purged 1")
    bad = cli.invoke(main, ["dlq", "purge", STREAM, "--before", "last tuesday"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


def test_dlq_purge_says_how_many_and_asks_first(cli: CliRunner, redis_sync: redis.Redis) -> None:
    for n in range(3):
        dead(redis_sync, n)
    refused = cli.invoke(main, ["dlq", "purge", STREAM], input="n\n")
    assert f"purge 3 dead letter(s) of {DLQ}?" in refused.output
    assert refused.exit_code == 1 and redis_sync.xlen(DLQ) == 3
    unanswered = cli.invoke(main, ["dlq", "purge", STREAM])  # no terminal: nothing done
    assert unanswered.exit_code != 0 and redis_sync.xlen(DLQ) == 3
    accepted = cli.invoke(main, ["dlq", "purge", STREAM], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.output.splitlines()[-1] == f"purged 3 dead letter(s) from {DLQ}"
    assert redis_sync.xlen(DLQ) == 0


def dead_in(client: redis.Redis, n: int, group: str, event: str, error: str, ms: int) -> str:
    fields = dead_letter_fields(n, event=event, payload=delivery_body(event, f"ex-{n}").decode(),
                                error=error, group=group, failed_at=str(ms))  # fmt: skip
    return client.xadd(DLQ, fields, id=f"{ms}-0").decode()  # type: ignore[union-attr]


def test_dlq_replay_and_purge_filters_and_dry_run(cli: CliRunner, redis_sync: redis.Redis) -> None:
    t = 1_711_281_750_000  # Unix ms (a number below 10**11 would be seconds)
    a = dead_in(redis_sync, 1, "billing", "extraction.failed", "TimeoutError: slow", t + 1000)
    b = dead_in(redis_sync, 2, "billing", "extraction.completed", "KeyError: x", t + 2000)
    c = dead_in(redis_sync, 3, "audit", "extraction.failed", "TimeoutError: slow", t + 3000)
    d = dead_in(redis_sync, 4, "billing", "extraction.failed", "TimeoutError: slow", t + 4000)

    preview = cli.invoke(main, ["dlq", "replay", STREAM, "--group", "billing", "--error",
                                "timeout", "--dry-run"])  # fmt: skip
    assert preview.output.splitlines() == [
        f"2 dead letter(s) of {DLQ} would be replayed",
        f"  {a}",
        f"  {d}",
    ]
    assert redis_sync.xlen(DLQ) == 4  # a dry run changes nothing
    result = cli.invoke(main, ["dlq", "replay", STREAM, "--event", "extraction.failed",
                               "--until", str(t + 3000)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"2 replayed onto {STREAM}, 0 not found"
    assert sorted(f[b"id"] for _, f in redis_sync.xrange(STREAM)) == [b"msg_1", b"msg_3"]
    since = "2024-03-24T12:02:32.001Z"  # just after b
    purge = cli.invoke(main, ["dlq", "purge", STREAM, "--since", since, "--yes"])
    assert purge.output.strip() == f"purged 1 dead letter(s) from {DLQ}"
    assert [i.decode() for i, _ in redis_sync.xrange(DLQ)] == [b]
    both = cli.invoke(main, ["dlq", "replay", STREAM, "--id", b, "--group", "billing"])
    assert both.exit_code == 2
    assert c and d  # replayed and purged above


def test_dlq_replay_refuses_while_a_job_runs_on_the_stream(
    cli: CliRunner, redis_sync: redis.Redis
) -> None:
    from relay.redis.keys import job_lock_key as lock_key

    dead(redis_sync, 1)
    redis_sync.set(lock_key(STREAM), "job-elsewhere", px=30_000)
    result = cli.invoke(main, ["dlq", "replay", STREAM, "--all"])
    assert result.exit_code == 1 and "job job-elsewhere is running" in result.output
    assert redis_sync.xlen(DLQ) == 1


def test_parse_before() -> None:
    assert parse_before("2024-03-24T12:00:00Z") == 1711281600000
    assert parse_before("2024-03-24T12:00:00") == 1711281600000
    assert parse_before("1711281600") == 1711281600000
    assert parse_before("1711281600000") == 1711281600000


def test_stats_table_and_json(cli: CliRunner, redis_sync: redis.Redis) -> None:
    for n in range(5):
        redis_sync.xadd(STREAM, relay_fields(n))
    redis_sync.xgroup_create(STREAM, "billing", id="0")
    redis_sync.xreadgroup("billing", "c1", {STREAM: ">"}, count=2)
    dead(redis_sync, 1)
    redis_sync.xadd("other:stream", relay_fields(1))

    document = json.loads(cli.invoke(main, ["stats", "--json"]).output)
    assert [item["stream"] for item in document] == [STREAM, "other:stream"]
    mine = document[0]
    assert (mine["length"], mine["dlq_length"]) == (5, 1)
    assert mine["groups"] == [
        {"name": "billing", "consumers": 1, "pending": 2, "lag": 3, "last_delivered_id": mine[
            "groups"][0]["last_delivered_id"]}
    ]  # fmt: skip

    table = cli.invoke(main, ["stats", STREAM]).output.splitlines()
    assert table[0].split() == ["STREAM", "LENGTH", "DLQ", "GROUP", "CONSUMERS", "PENDING", "LAG"]
    assert table[1].split() == [STREAM, "5", "1", "billing", "1", "2", "3"]


def test_stats_with_no_streams(cli: CliRunner) -> None:
    assert cli.invoke(main, ["stats"]).output.strip() == "no streams"
