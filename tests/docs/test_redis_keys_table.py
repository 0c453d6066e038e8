"""docs/operations.md's Redis keys table lists every key format of relay/redis/keys.py, the
one module that spells keys: a key added there without a row here fails this test."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

from relay.redis import keys

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
# Distinctive stand-ins for each argument, and how the table writes them.
ARGUMENTS = {"prefix": "PREFIX", "stream": "STREAM", "event": "EVENT", "public_url": "URL",
             "job_id": "JOBID"}  # fmt: skip
SPELLED = [("{STREAM}", "{<tag>}"), ("STREAM", "<stream>"), ("PREFIX", "<prefix>"),
           ("EVENT", "<event>"), ("URL", "<RELAY_PUBLIC_URL>"), ("JOBID", "<job id>")]  # fmt: skip


def key_formats() -> dict[str, list[str]]:
    """Each key function of the module and the key patterns it produces, as the table
    writes them (a function with an optional argument: with and without it)."""
    found: dict[str, list[str]] = {}
    for name, function in inspect.getmembers(keys, inspect.isfunction):
        if function.__module__ != keys.__name__ or not name.endswith(("_key", "_stream")):
            continue
        found[name] = [spelled(key) for key in calls(function)]
    return found


def calls(function: Callable[..., str]) -> list[str]:
    parameters = inspect.signature(function).parameters.values()
    required = {p.name: ARGUMENTS[p.name] for p in parameters if p.default is p.empty}
    results = [function(**required)]
    optional = {p.name: ARGUMENTS[p.name] for p in parameters if p.default is not p.empty}
    if optional:
        results.append(function(**required, **optional))
    return results


def spelled(key: str) -> str:
    for stand_in, written in SPELLED:
        key = key.replace(stand_in, written)
    return key


def table() -> str:
    text = OPERATIONS.read_text()
    return text[text.index("## Redis keys") :].split("\n## ", 1)[0]


def test_the_table_lists_every_key_format_of_the_key_module() -> None:
    formats = key_formats()
    assert len(formats) >= 12  # streams, companions of a stream, shared keys
    section = table()
    missing = {name: f for name, fs in formats.items() for f in fs if f"`{f}`" not in section}
    assert not missing, f"docs/operations.md's Redis keys table lacks {missing}"


def test_every_row_of_the_table_is_a_key_the_module_makes() -> None:
    made = {f for fs in key_formats().values() for f in fs}
    rows = re.findall(r"^\| `([^`]+)` \|", table(), re.MULTILINE)
    assert rows and set(rows) <= made


def test_the_trim_replay_and_dlq_keys_are_among_them() -> None:
    formats = key_formats()
    assert formats["trim_marks_key"] == ["relay:trim:{<tag>}:<stream>"]
    assert formats["replay_marks_key"] == ["relay:replayed:{<tag>}:<stream>"]
    assert formats["dlq_stream"] == ["<stream>:dlq"]
