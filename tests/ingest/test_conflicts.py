"""The id-conflict rule of the contract's "Inbound HTTP": the same id with another body is
answered duplicate, counted, and logged with both digests (and never the bodies)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
import structlog

from relay import observability
from relay.observability import configure_logging
from tests.conftest import StartRelay
from tests.support.http import relay_metrics
from tests.support.signing import event_body, sign

LogLines = Callable[[], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[LogLines]:
    saved = structlog.get_config()
    for name in ("_json_lines", "_info_enabled"):
        monkeypatch.setattr(observability, name, getattr(observability, name))
    out = io.BytesIO()
    text = io.TextIOWrapper(out, write_through=True)
    configure_logging("info", "json", stream=text)

    async def read() -> list[dict[str, Any]]:
        await asyncio.sleep(0)  # lines go out at the end of the loop iteration
        return [orjson.loads(line) for line in out.getvalue().splitlines()]

    yield read
    structlog.configure(**saved)
    text.detach()


def conflicts_counted(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("relay_deliveries_conflicting_total "):
            return float(line.split()[1])
    raise AssertionError("relay_deliveries_conflicting_total is not exported")


async def post(http: aiohttp.ClientSession, port: int, body: bytes, msg_id: str) -> str:
    url = f"http://127.0.0.1:{port}/webhooks/anyformat"
    async with http.post(url, data=body, headers=sign(body, msg_id=msg_id)) as response:
        assert response.status == 200
        return str((await response.json())["status"])


async def test_another_body_under_a_relayed_id_is_a_counted_logged_duplicate(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession, log_lines: LogLines
) -> None:
    server = await start_relay(redis_url)
    first = event_body(extraction_id="ex-1")
    second = event_body(extraction_id="ex-2", secret_note="not in any log")
    assert await post(http, server.public_port, first, "msg_1") == "accepted"
    assert await post(http, server.public_port, second, "msg_1") == "duplicate"
    assert conflicts_counted(await relay_metrics(http, server)) == 1
    [line] = [line for line in await log_lines() if line["msg"] == "delivery_id_conflict"]
    assert line["id"] == "msg_1"
    assert line["first_digest"] == "sha256:" + hashlib.sha256(first).hexdigest()
    assert line["digest"] == "sha256:" + hashlib.sha256(second).hexdigest()
    assert "not in any log" not in orjson.dumps(await log_lines()).decode()


async def test_a_plain_redelivery_is_no_conflict(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession, log_lines: LogLines
) -> None:
    server = await start_relay(redis_url)
    body = event_body(extraction_id="ex-1")
    twin = event_body(extraction_id="ex-1", note="same event, another id and body")
    assert await post(http, server.public_port, body, "msg_1") == "accepted"
    assert await post(http, server.public_port, body, "msg_1") == "duplicate"
    assert await post(http, server.public_port, twin, "msg_2") == "duplicate"  # content mark
    assert conflicts_counted(await relay_metrics(http, server)) == 0
    assert not [line for line in await log_lines() if line["msg"] == "delivery_id_conflict"]
