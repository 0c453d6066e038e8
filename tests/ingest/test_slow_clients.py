"""Slow and idle clients cannot starve signed deliveries (RELAY_CLIENT_TIMEOUT,
RELAY_KEEPALIVE_TIMEOUT, RELAY_MAX_CONNECTIONS), over real sockets.

The full 1,000 + 1,000 run, with its figures, is bench/slow_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import aiohttp
import pytest
import redis
import trustme

from relay.ingest.connections import PublicConnection
from relay.receiver.app import RelayServer
from tests.conftest import StartRelay
from tests.support.http import relay_metrics
from tests.support.raw_http import RawAnswer, signed_request
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for

PATH = "/webhooks/anyformat"
TRICKLE_SECONDS = 0.2  # a slow client's pace: never idle long enough for any idle timeout


def open_connections(server: RelayServer) -> int:
    assert server.relay.public is not None
    return server.relay.public.open_connections


def connections(server: RelayServer) -> list[PublicConnection]:
    assert server.relay.public is not None
    return [c for c in server.relay.public.connections if isinstance(c, PublicConnection)]


class Trickler:
    """A client that sends ``head`` at once, then one byte of ``rest`` at a time."""

    def __init__(self, port: int, head: bytes, rest: bytes) -> None:
        self.port, self.head, self.rest = port, head, rest
        self.answer = RawAnswer(b"", closed=False)
        self.sent_all = False

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        received = bytearray()

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(self.head)
                for byte in self.rest:
                    await asyncio.sleep(TRICKLE_SECONDS)
                    writer.write(bytes([byte]))
                self.sent_all = True

        sender = asyncio.create_task(trickle())
        try:
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    received += chunk
            self.answer = RawAnswer(bytes(received), closed=True)
        finally:
            sender.cancel()
            writer.close()


def slow_headers(port: int) -> Trickler:
    return Trickler(port, f"POST {PATH} HTTP/1.1\r\nHost: relay\r\n".encode(), b"X-Slow: " * 50)


def slow_body(port: int) -> Trickler:
    head = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: 100000\r\n\r\n{{"
    return Trickler(port, head.encode(), b"a" * 1000)


async def deliver(http: aiohttp.ClientSession, server: RelayServer) -> tuple[int, str]:
    body = event_body()
    url = f"http://127.0.0.1:{server.public_port}{PATH}"
    async with http.post(url, data=body, headers=sign(body)) as response:
        return response.status, (await response.json())["status"]


async def test_hundreds_of_slow_clients_do_not_starve_a_signed_delivery(
    start_relay: StartRelay, redis_url: str, redis_sync: redis.Redis, http: aiohttp.ClientSession
) -> None:
    # Fewer in-flight slots than slow bodies: under the old order (slot before body) every
    # slot would be held by a trickler and the signed delivery answered 503.
    server = await start_relay(redis_url, RELAY_CLIENT_TIMEOUT=3, RELAY_MAX_IN_FLIGHT=50)
    tricklers = [slow_headers(server.public_port) for _ in range(150)]
    tricklers += [slow_body(server.public_port) for _ in range(150)]
    clients = [asyncio.create_task(t.run()) for t in tricklers]
    try:
        await wait_for(lambda: open_connections(server) >= 300, what="all slow clients connected")
        # The relay has read every slow client's first byte: each is inside a request (its
        # deadline armed), or was already answered and closed.
        await wait_for(
            lambda: (
                sum(c.deadline is not None for c in connections(server))
                + sum(t.answer.closed for t in tricklers)
                >= 300
            ),
            what="the relay has seen every slow client's first byte",
        )
        assert await deliver(http, server) == (200, "accepted")
        async with asyncio.timeout(30):
            await asyncio.gather(*clients)
    finally:
        for client in clients:
            client.cancel()

    for trickler in tricklers:
        assert trickler.answer.closed
        assert not trickler.sent_all
        assert trickler.answer.statuses == [408], trickler.answer.data[:200]
    await wait_for(lambda: open_connections(server) == 0, what="every connection released")
    assert redis_sync.xlen("anyformat:events") == 1
    metrics = await relay_metrics(http, server)
    assert 'relay_deliveries_rejected_total{reason="client_timeout"} 300.0' in metrics


async def first_byte_arms_a_deadline(
    server: RelayServer, writer: asyncio.StreamWriter, data: bytes
) -> asyncio.TimerHandle:
    writer.write(data)
    await wait_for(
        lambda: any(c.deadline is not None for c in connections(server)), what="deadline armed"
    )
    [connection] = connections(server)
    assert connection.deadline is not None
    return connection.deadline


def fire(deadline: asyncio.TimerHandle) -> None:
    """The deadline passes now: run what its timer would run, instead of the timer."""
    callback, args = deadline._callback, deadline._args  # type: ignore[attr-defined]
    deadline.cancel()
    callback(*args)


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(20):
        return await reader.read()


@pytest.fixture
async def patient_relay(start_relay: StartRelay, redis_url: str) -> RelayServer:
    # A deadline far away: the tests below decide when it passes (fire()).
    return await start_relay(redis_url, RELAY_CLIENT_TIMEOUT=3600, RELAY_KEEPALIVE_TIMEOUT=3600)


async def open_raw(server: RelayServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
    await wait_for(lambda: len(connections(server)) == 1, what="connection accepted")
    return reader, writer


async def test_a_request_complete_by_its_deadline_is_served(
    patient_relay: RelayServer, redis_sync: redis.Redis
) -> None:
    body = event_body()
    request = signed_request(body, sign(body), "Connection: close")
    reader, writer = await open_raw(patient_relay)
    assert connections(patient_relay)[0].deadline is None  # connected, no byte yet
    deadline = await first_byte_arms_a_deadline(patient_relay, writer, request[:1])
    writer.write(request[1:])  # the last byte, before the deadline
    await wait_for(deadline.cancelled, what="the deadline is met once the body is complete")
    answer = await read_to_eof(reader)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert redis_sync.xlen("anyformat:events") == 1
    writer.close()


async def test_a_body_one_byte_short_at_its_deadline_is_answered_408_and_closed(
    patient_relay: RelayServer, redis_sync: redis.Redis
) -> None:
    body = event_body()
    request = signed_request(body, sign(body))
    reader, writer = await open_raw(patient_relay)
    deadline = await first_byte_arms_a_deadline(patient_relay, writer, request[:-1])
    fire(deadline)
    answer = await read_to_eof(reader)  # to EOF: the relay closed the connection
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"client_timeout"' in answer
    writer.write(request[-1:])  # too late
    await wait_for(lambda: open_connections(patient_relay) == 0, what="connection released")
    assert redis_sync.keys("anyformat:*") == []
    writer.close()


async def test_headers_one_byte_short_at_their_deadline_are_answered_408_and_closed(
    patient_relay: RelayServer,
) -> None:
    body = event_body()
    request = signed_request(body, sign(body))
    head_end = request.index(b"\r\n\r\n") + 3
    reader, writer = await open_raw(patient_relay)
    deadline = await first_byte_arms_a_deadline(patient_relay, writer, request[:head_end])
    fire(deadline)
    answer = await read_to_eof(reader)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"Server: anyformat-relay\r\n" in answer
    await wait_for(lambda: open_connections(patient_relay) == 0, what="connection released")
    writer.close()


async def test_each_request_on_a_kept_alive_connection_gets_its_own_deadline(
    patient_relay: RelayServer, redis_sync: redis.Redis
) -> None:
    reader, writer = await open_raw(patient_relay)
    first_body = event_body()
    first = signed_request(first_body, sign(first_body))
    deadline = await first_byte_arms_a_deadline(patient_relay, writer, first[:10])
    writer.write(first[10:])
    await wait_for(deadline.cancelled, what="first request complete")
    async with asyncio.timeout(20):
        first_answer = await reader.readuntil(b"}")
    assert first_answer.startswith(b"HTTP/1.1 200 ")
    [connection] = connections(patient_relay)
    assert connection.deadline is None  # idle between requests: keep-alive's business

    second_body = event_body()
    second = signed_request(second_body, sign(second_body), "Connection: close")
    second_deadline = await first_byte_arms_a_deadline(patient_relay, writer, second[:10])
    assert second_deadline is not deadline
    writer.write(second[10:])
    assert (await read_to_eof(reader)).startswith(b"HTTP/1.1 200 ")
    assert redis_sync.xlen("anyformat:events") == 2
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(
    start_relay: StartRelay, redis_url: str
) -> None:
    server = await start_relay(redis_url, RELAY_KEEPALIVE_TIMEOUT=0.5)
    reader, writer = await open_raw(server)
    assert await read_to_eof(reader) == b""  # closed by the relay, without a byte sent
    await wait_for(lambda: open_connections(server) == 0, what="connection released")
    writer.close()


async def test_connections_beyond_the_cap_are_closed_at_once_and_room_comes_back(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url, RELAY_MAX_CONNECTIONS=20)
    held = [await asyncio.open_connection("127.0.0.1", server.public_port) for _ in range(20)]
    await wait_for(lambda: open_connections(server) == 20, what="twenty connections open")

    reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
    with contextlib.suppress(ConnectionError):
        assert await read_to_eof(reader) == b""  # closed on arrival
    writer.close()
    assert open_connections(server) == 20
    assert "relay_public_connections_refused_total 1.0" in await relay_metrics(http, server)

    _, first_writer = held.pop()
    first_writer.close()
    await wait_for(lambda: open_connections(server) == 19, what="one connection released")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as one_shot:
        assert await deliver(one_shot, server) == (200, "accepted")
    for _, other in held:
        other.close()


async def test_bodies_being_received_hold_at_most_the_byte_budget_and_give_it_back(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    # Budget: RELAY_MAX_IN_FLIGHT x RELAY_MAX_BODY_BYTES = 2,000 bytes.
    server = await start_relay(redis_url, RELAY_MAX_IN_FLIGHT=1, RELAY_MAX_BODY_BYTES=2000)
    budget = server.relay.ingest.body_budget
    _, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
    head = f"POST {PATH} HTTP/1.1\r\nHost: relay\r\nContent-Length: 2000\r\n\r\n".encode()
    writer.write(head + b"a" * 1900)  # all but the last 100 bytes
    await wait_for(lambda: budget.held == 1900, what="the partial body is counted")

    # A signed delivery (about 300 bytes) does not fit beside it: shed, not queued.
    assert await deliver(http, server) == (503, "unavailable")
    writer.close()  # the sender goes away: what its body held comes back
    await wait_for(lambda: budget.held == 0, what="budget given back")
    assert await deliver(http, server) == (200, "accepted")


async def test_a_silent_tls_handshake_is_cut_off_at_the_client_timeout(
    start_relay: StartRelay, redis_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """With RELAY_TLS_CERT_FILE the handshake precedes every byte the protocol sees;
    asyncio alone would give a silent one 60 s."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    server = await start_relay(
        redis_url, RELAY_TLS_CERT_FILE=str(cert), RELAY_TLS_KEY_FILE=str(key),
        RELAY_CLIENT_TIMEOUT=1,
    )  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", server.public_port)
    writer.write(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
    assert await read_to_eof(reader) == b""  # closed by the relay
    writer.close()

    context = ssl.create_default_context()
    ca.configure_trust(context)
    body = event_body()
    url = f"https://127.0.0.1:{server.public_port}{PATH}"
    async with http.post(url, data=body, headers=sign(body), ssl=context) as response:
        assert response.status == 200  # a real handshake is unaffected
