"""`relay tail`: print a stream's entries as they arrive."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from relay.redis.client import Redis


async def follow(
    redis: Redis, stream: str, *, start: str = "$", block_ms: int = 1000
) -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """Entries of ``stream`` after ``start``, forever (``XREAD BLOCK``)."""
    last = start
    while True:
        reply: Any = await redis.xread({stream: last}, block=block_ms, count=100)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id.decode()
                yield last, {k.decode(errors="replace"): v for k, v in fields.items()}


def render(entry_id: str, fields: dict[str, bytes], as_json: bool) -> str:
    text = {name: value.decode(errors="replace") for name, value in fields.items()}
    if as_json:
        document: dict[str, Any] = {"entry_id": entry_id, **text}
        with contextlib.suppress(orjson.JSONDecodeError):
            document["payload"] = orjson.loads(fields.get("payload", b""))
        return orjson.dumps(document).decode()
    extraction = text.get("extraction_id") or "-"
    workflow = text.get("workflow_id") or "-"
    head = f"{entry_id}  {text.get('event', '?')}  id={text.get('id', '?')}"
    return f"{head}  extraction={extraction}  workflow={workflow}\n  {text.get('payload', '')}"
