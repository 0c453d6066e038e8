"""Helpers for the tests that run whole relays: settings, deliveries, waiting on state."""

from __future__ import annotations

import json
import time

import aiohttp
import redis

from relay.receiver.app import RelayServer
from tests.support.http import relay_metrics
from tests.support.registering import PATH, registering
from tests.support.registering import PUBLIC_URL as PUBLIC_URL
from tests.support.registering import only_secret as only_secret
from tests.support.signing import sign
from tests.support.waiting import wait_for

STATE = "anyformat:reconcile"

# A relay registering with the fake API reconciles through it.
reconciling = registering


def webhook_body(run_id: str, workflow_id: str, status: str) -> bytes:
    """What AnyFormat sends when ``run_id`` ends in ``status``."""
    event = "extraction.completed" if status == "processed" else "extraction.failed"
    data = {"extraction_id": run_id, "status": status, "workflow_id": workflow_id,
            "processed_at": "2026-11-27T08:00:00Z" if status == "processed" else None}  # fmt: skip
    return json.dumps({"event": event, "timestamp": "2026-11-27T08:00:00Z", "data": data}).encode()


async def deliver(
    http: aiohttp.ClientSession, url: str, secret: str, body: bytes
) -> tuple[int, str]:
    async with http.post(url + PATH, data=body, headers=sign(body, secret=secret)) as response:
        return response.status, (await response.json()).get("status", "")


def public_url(server: RelayServer) -> str:
    return f"http://127.0.0.1:{server.public_port}"


def set_heartbeat(client: redis.Redis, seconds_ago: float) -> None:
    """As if the last relay stopped receiving ``seconds_ago`` (the relays' own record)."""
    client.hset(STATE, "heartbeat", round((time.time() - seconds_ago) * 1000))


async def metrics_with(
    http: aiohttp.ClientSession, server: RelayServer, *lines: str, within: float = 20
) -> str:
    """The relay's /metrics once it shows every one of ``lines`` (counted after the sweep
    recorded itself in Redis, so polled, not read once)."""

    async def showing() -> str | None:
        text = await relay_metrics(http, server)
        return text if all(line in text for line in lines) else None

    return await wait_for(showing, what=f"/metrics showing {list(lines)}", within=within)


def by_extraction(client: redis.Redis, stream: str) -> dict[str, list[dict[str, str]]]:
    """Every entry of ``stream`` grouped by extraction id (a doubled event has two)."""
    found: dict[str, list[dict[str, str]]] = {}
    for _, raw in client.xrange(stream):
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        found.setdefault(fields["extraction_id"], []).append(fields)
    return found
