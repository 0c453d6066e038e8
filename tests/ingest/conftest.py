from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest
import structlog

from relay import observability
from relay.observability import configure_logging

DeliveryLines = Callable[[], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def delivery_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[DeliveryLines]:
    """JSON logging onto a buffer, as `relay run` logs; returns the delivery lines so far."""
    saved = structlog.get_config()
    for name in ("_json_lines", "_info_enabled"):
        monkeypatch.setattr(observability, name, getattr(observability, name))
    out = io.BytesIO()
    text = io.TextIOWrapper(out, write_through=True)  # kept: collecting it closes ``out``
    configure_logging("info", "json", stream=text)

    async def read() -> list[dict[str, Any]]:
        await asyncio.sleep(0)  # lines go out at the end of the loop iteration
        parsed = [orjson.loads(line) for line in out.getvalue().splitlines()]
        return [line for line in parsed if line["msg"] == "delivery"]

    yield read
    structlog.configure(**saved)
    text.detach()
