"""What senders have sent counts against one byte budget per process from the moment it
arrives (relay.ingest.connections), until the request is answered: beyond it, ``503
overloaded`` and the connection closed, nothing buffered; the budget comes back."""

from __future__ import annotations

import asyncio

import aiohttp

from relay.ingest.body import BodyBudget
from relay.memory import RESERVED_BYTES
from relay.receiver.app import RelayServer
from tests.conftest import StartRelay
from tests.ingest.test_slow_clients import deliver
from tests.support.http import relay_metrics
from tests.support.waiting import wait_for

PATH = "/webhooks/anyformat"
BUDGET = 190_000
# RELAY_MEMORY_LIMIT whose budget is BUDGET: (limit - reserve) / 2 copies.
LIMIT = RESERVED_BYTES + 2 * BUDGET


def head(length: int) -> bytes:
    return f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: {length}\r\n\r\n".encode()


async def start(start_relay: StartRelay, redis_url: str) -> tuple[RelayServer, BodyBudget]:
    server = await start_relay(
        redis_url, RELAY_MAX_BODY_BYTES=100_000, RELAY_MEMORY_LIMIT=str(LIMIT)
    )
    budget = server.relay.body_budget
    assert budget.limit == BUDGET
    return server, budget


async def read_all(reader: asyncio.StreamReader) -> bytes:
    data = b""
    async with asyncio.timeout(10):
        while chunk := await reader.read(65536):
            data += chunk
    return data


async def test_bytes_count_from_arrival_across_connections_and_come_back(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server, budget = await start(start_relay, redis_url)
    first = head(100_000) + b"a" * 99_000
    _, one = await asyncio.open_connection("127.0.0.1", server.public_port)
    one.write(first)
    await wait_for(lambda: budget.held == len(first), what="the first partial request is counted")
    second = head(100_000) + b"a" * (BUDGET - 100 - len(first) - len(head(100_000)))
    _, two = await asyncio.open_connection("127.0.0.1", server.public_port)
    two.write(second)
    await wait_for(lambda: budget.held == BUDGET - 100, what="both partial requests are counted")

    # A signed delivery (a few hundred bytes) does not fit beside them: shed, not queued.
    assert await deliver(http, server) == (503, "unavailable")
    assert budget.held == BUDGET - 100
    one.close()  # a sender goes away: what it sent comes back, and room with it
    await wait_for(lambda: budget.held == len(second), what="the first request's bytes given back")
    assert await deliver(http, server) == (200, "accepted")
    assert budget.held == len(second)  # an answered delivery gives back all it took
    two.close()
    await wait_for(lambda: budget.held == 0, what="every byte given back")
    assert budget.peak == BUDGET - 100  # never over the limit, refusals took nothing


async def test_a_body_growing_past_the_budget_is_answered_503_and_closed(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server, budget = await start(start_relay, redis_url)
    _, holder = await asyncio.open_connection("127.0.0.1", server.public_port)
    held = head(100_000) + b"a" * 99_000
    holder.write(held)
    await wait_for(lambda: budget.held == len(held), what="the holder is counted")

    # Headers first (they fit), then a body that does not: the handler reading it answers.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
    writer.write(head(100_000))
    await wait_for(lambda: budget.held == len(held) + len(head(100_000)), what="headers counted")
    writer.write(b"a" * 99_999)
    answer = await read_all(reader)  # read to the end: the relay closes the connection
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b'"reason":"overloaded"' in answer.replace(b" ", b"")
    assert b"Retry-After: 5" in answer
    await wait_for(lambda: budget.held == len(held), what="the refused request gave back all")
    assert budget.peak <= BUDGET
    holder.close()
    await wait_for(lambda: budget.held == 0, what="every byte given back")
    assert await deliver(http, server) == (200, "accepted")
    text = await relay_metrics(http, server)
    assert 'relay_deliveries_unavailable_total{reason="overloaded"} 1.0' in text


async def test_headers_past_the_budget_are_answered_503_before_any_parsing(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server, budget = await start(start_relay, redis_url)
    _, holder = await asyncio.open_connection("127.0.0.1", server.public_port)
    held = head(100_000) + b"a" * 99_000
    holder.write(held)
    _, other = await asyncio.open_connection("127.0.0.1", server.public_port)
    other.write(head(100_000) + b"a" * 90_000)
    await wait_for(lambda: budget.held == len(held) + len(head(100_000)) + 90_000, what="counted")

    # A request whose first bytes already do not fit: the raw answer, nothing parsed.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
    writer.write(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: relay\r\nX-Pad: " + b"p" * 2000)
    answer = await read_all(reader)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert answer.endswith(b'{"status": "unavailable", "reason": "overloaded"}\n')
    assert budget.peak <= BUDGET
    holder.close()
    other.close()
    await wait_for(lambda: budget.held == 0, what="every byte given back")
    assert await deliver(http, server) == (200, "accepted")
