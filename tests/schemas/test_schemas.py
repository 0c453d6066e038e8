"""relay/schemas: what the relay writes validates, and what it must never write does not."""

from __future__ import annotations

import json

import orjson
import pytest
import redis
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from relay.cli import main
from relay.dev.trigger import sample_body
from relay.reconcile.api import Run
from relay.reconcile.events import reconciled_entry
from relay.schemas import NAMES, load
from relay.streams.writer import Entry
from tests.support.entry_schemas import dead_letter_fields, entry_problems, problems_at

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def fields_of(entry: Entry) -> dict[str, str]:
    raw = entry.fields()
    return {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}


def written() -> dict[str, str]:
    """An entry's fields exactly as the ingest writer produces them."""
    body = sample_body("extraction.completed", "wf-1")
    data = orjson.loads(body)["data"]
    return fields_of(Entry("msg_1", "extraction.completed", body, 1711281750000,
                           data["extraction_id"], "wf-1", None))  # fmt: skip


def test_every_schema_is_valid_2020_12_and_named_by_its_file() -> None:
    for name in NAMES:
        schema = load(name)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert name in schema["$id"]


def test_an_entry_as_the_writer_writes_it_validates() -> None:
    assert entry_problems("anyformat:events", written()) == []


def test_a_reconciled_entry_validates_with_its_source() -> None:
    run = Run("run-1", "processed", None, None, "2024-03-24T12:02:30.000Z")
    entry = fields_of(reconciled_entry(run, "extraction.completed", "wf-1"))
    assert entry["source"] == "reconciled"
    assert entry_problems("anyformat:events", entry) == []


def test_tracing_fields_validate_when_well_formed_and_not_otherwise() -> None:
    good = {**written(), "traceparent": TRACEPARENT, "tracestate": "rojo=00f067aa0ba902b7"}
    assert entry_problems("s", good) == []
    assert entry_problems("s", {**good, "traceparent": "not-a-trace"}) != []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"id": None}, "'id' is a required property"),
        ({"received_at": "yesterday"}, "does not match"),
        ({"received_at": "1.5"}, "does not match"),
        ({"payload": None}, "'payload' is a required property"),
        ({"id": ""}, "should be non-empty"),
        ({"source": "guessed"}, "is not one of"),
    ],
)
def test_the_entry_schema_refuses(change: dict[str, str | None], why: str) -> None:
    entry = {k: v for k, v in {**written(), **change}.items() if v is not None}
    errors = [e.message for e in Draft202012Validator(load("stream-entry")).iter_errors(entry)]
    assert any(why in error for error in errors), errors


def test_the_published_schema_lets_new_fields_through_and_the_suite_does_not() -> None:
    """Consumers must not break on a field added later; the suite's check must notice a
    field the writers add without the schema naming it."""
    entry = {**written(), "added_later": "x"}
    assert list(Draft202012Validator(load("stream-entry")).iter_errors(entry)) == []
    assert any("added_later" in p for p in entry_problems("s", entry))


def test_a_dead_letter_validates_and_its_original_fields_are_checked() -> None:
    assert entry_problems("s:dlq", dead_letter_fields(1)) == []
    assert entry_problems("s:dlq", {**dead_letter_fields(1), "attempts": "five"}) != []
    lacking_id = {k: v for k, v in dead_letter_fields(1).items() if k != "id"}
    assert any("'id'" in p for p in entry_problems("s:dlq", lacking_id))
    required = load("dlq-entry")["required"]
    malformed = {k: v for k, v in dead_letter_fields(1).items() if k in required}
    malformed |= {"id": "m", "error": "malformed entry: entry lacks field(s): payload"}
    assert entry_problems("s:dlq", malformed) == []  # kept as it was: it never validated
    lacking_original = {k: v for k, v in dead_letter_fields(1).items() if k != "original_id"}
    assert any("original_id" in p for p in entry_problems("s:dlq", lacking_original))


@pytest.mark.parametrize("event", ["extraction.completed", "extraction.failed"])
def test_anyformats_payloads_validate_against_their_event_schema(event: str) -> None:
    schema = load(event)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for example in schema["examples"]:
        validator.validate(example)
    validator.validate(orjson.loads(sample_body(event, None)))
    other = "extraction.failed" if event == "extraction.completed" else "extraction.completed"
    assert not validator.is_valid(orjson.loads(sample_body(other, None)))
    no_id = orjson.loads(sample_body(event, None))
    del no_id["data"]["extraction_id"]
    assert not validator.is_valid(no_id)


def test_the_suites_check_finds_a_bad_entry_on_a_real_server(
    redis_sync: redis.Redis, redis_url: str
) -> None:
    """The hook that validates every entry after each test can fail (then it is cleared)."""
    redis_sync.xadd("anyformat:events", {"event": "e", "payload": "{}"})
    redis_sync.xadd("anyformat:events:dlq", {**dead_letter_fields(1), "failed_at": "soon"})
    found = problems_at(redis_url)
    assert any("'id' is a required property" in p for p in found)
    assert any("'soon' does not match" in p for p in found)
    redis_sync.flushall()
    assert problems_at(redis_url) == []


def test_relay_schema_prints_each_schema_and_all_of_them() -> None:
    cli = CliRunner()
    for name in NAMES:
        result = cli.invoke(main, ["schema", name])
        assert result.exit_code == 0 and json.loads(result.output) == load(name)
    everything = json.loads(cli.invoke(main, ["schema"]).output)
    assert everything == {name: load(name) for name in NAMES}
    listed = cli.invoke(main, ["schema", "--list"]).output.split("\n")
    assert [line.split()[0] for line in listed if line] == list(NAMES)
    unknown = cli.invoke(main, ["schema", "stream"])
    assert unknown.exit_code == 2 and "stream-entry" in unknown.output
