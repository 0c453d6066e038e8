"""Every entry the suite's Redis servers hold, checked against the published schemas.

Each Redis server the suite starts registers here while it runs (``watch``/``unwatch``).
After every test, and before a server is stopped, every stream on every running master is
read and each entry validated: a stream entry against ``stream-entry``, a dead letter
against ``dlq-entry`` (and its original fields against ``stream-entry``, unless it was
dead-lettered as malformed). Strictly: a field the relay writes that the schema does not
name fails too, so the schema cannot fall behind the writers.

A test that writes entries by hand that the relay never would (to test what a worker does
with them) is marked ``@pytest.mark.foreign_entries``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import redis
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from relay.schemas import NAMES, load
from relay.streams.writer import Entry

WATCHED: set[str] = set()  # urls of the running servers
FOUND: list[str] = []  # problems seen on servers stopped since the last check
PAGE = 1000


def watch(url: str) -> None:
    WATCHED.add(url)


def unwatch(url: str, *, check: bool = True) -> None:
    """Stop watching ``url``; with ``check``, validate what it holds first (it is going)."""
    if check and url in WATCHED:
        FOUND.extend(problems_at(url))
    WATCHED.discard(url)


@cache
def _validator(name: str, strict: bool) -> Draft202012Validator:
    schemas = [load(known) for known in NAMES]
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas
    )
    schema = load(name)
    if strict:  # the published schema lets consumers ignore new fields; the suite may not
        schema = {"$ref": schema["$id"], "unevaluatedProperties": False}
    return Draft202012Validator(schema, registry=registry)


def entry_problems(key: str, fields: dict[str, str]) -> list[str]:
    """What is wrong with one entry of ``key`` (empty: nothing)."""
    if key.endswith(":dlq"):
        found = [e.message for e in _validator("dlq-entry", False).iter_errors(fields)]
        if fields.get("error", "").startswith("malformed entry"):
            return found
        dlq_fields = load("dlq-entry")["properties"]
        original = {k: v for k, v in fields.items() if k not in dlq_fields}
        return found + entry_problems(key.removesuffix(":dlq"), original)
    found = [e.message for e in _validator("stream-entry", True).iter_errors(fields)]
    if "payload" in fields:
        try:
            payload = json.loads(fields["payload"])
        except ValueError:
            return [*found, "payload is not JSON"]
        if not (isinstance(payload, dict) and isinstance(payload.get("data"), dict)):
            found.append("payload is not an object with an object `data`")
        elif payload.get("event") != fields.get("event"):
            found.append("payload's event differs from the entry's")
    return found


def _entries(client: redis.Redis, key: bytes) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    start = b"-"
    while page := client.xrange(key, min=start, count=PAGE):
        yield from page
        start = b"(" + page[-1][0]


def problems_at(url: str) -> list[str]:
    """Every schema violation on the master at ``url`` (a replica or a server that does not
    answer is skipped: its master is checked, or it is gone)."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    found: list[str] = []
    try:
        if client.execute_command("ROLE")[0] not in (b"master", "master"):
            return []
        for key in client.scan_iter(count=1000, _type="STREAM"):
            for entry_id, raw in _entries(client, key):
                fields = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
                for problem in entry_problems(key.decode(), fields):
                    found.append(f"{url} {key.decode()} {entry_id.decode()}: {problem}")
    except (redis.ConnectionError, redis.TimeoutError):
        return found
    except redis.ResponseError as exc:  # a server that is not Redis enough to scan
        if "unknown command" not in str(exc).lower():
            raise
    finally:
        client.close()
    return found


def check_all() -> list[str]:
    """The problems on every watched server, and those found on servers stopped since."""
    found = FOUND[:]
    FOUND.clear()
    for url in sorted(WATCHED):
        found += problems_at(url)
    return found


def flush_all() -> None:
    """Empty every watched master: entries a test wrote by hand (or that failed) must not be
    charged to the next test, which may flush another server only."""
    for url in WATCHED:
        client = redis.Redis.from_url(url, socket_timeout=2)
        try:
            if client.execute_command("ROLE")[0] in (b"master", "master"):
                client.flushall()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        finally:
            client.close()


def relay_fields(
    n: int | str, event: str = "extraction.completed", **overrides: str
) -> dict[str, str]:
    """The fields of an entry exactly as the relay writes them, for tests that add
    entries with ``XADD`` themselves (in a pipeline, many at once)."""
    extraction_id = overrides.pop("extraction_id", f"ex-{n}")
    payload = json.dumps({"event": event, "data": {"extraction_id": extraction_id}})
    fields = {
        "id": f"msg_{n}", "event": event, "payload": payload, "received_at": "1711281750000",
        "extraction_id": extraction_id, "workflow_id": "",
    }  # fmt: skip
    return {**fields, **overrides}


def dead_letter_fields(n: int | str, **overrides: str) -> dict[str, str]:
    """A dead letter as the worker runtime writes it (of ``relay_fields(n)``)."""
    fields = {
        **relay_fields(n, "extraction.failed"), "error": f"RuntimeError: failure number {n}",
        "attempts": "5", "group": "billing", "original_id": f"{n}-0", "failed_at": "1711281760000",
    }  # fmt: skip
    return {**fields, **overrides}


def relay_entry(
    message_id: str,
    event: str = "extraction.completed",
    extraction_id: str = "",
    content_mark: str | None = None,
) -> Entry:
    """An ``Entry`` the ingest path could have built: its payload is a delivery body."""
    body = json.dumps({"event": event, "data": {"extraction_id": extraction_id}}).encode()
    return Entry(message_id, event, body, 1711281750000, extraction_id, "", content_mark)


def delivery_body(event: str = "extraction.completed", extraction_id: str = "") -> bytes:
    """A payload as the ingest path accepts it: an object with ``event`` and ``data``."""
    return json.dumps({"event": event, "data": {"extraction_id": extraction_id}}).encode()
