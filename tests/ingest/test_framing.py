"""Malformed framing is refused, never relayed and never a 500, over raw sockets.

Every malformed request below carries a genuine signature over its body: had the relay
framed it the lenient way, it would have been accepted and written. Each runs against both
of aiohttp's request parsers: the C one (llhttp, what the wheels ship and the relay uses
where it imports) and the pure-Python fallback (``AIOHTTP_NO_EXTENSIONS=1``, or a platform
without the extension).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import aiohttp.http_parser
import aiohttp.web_protocol
import pytest
import redis

from relay.receiver.app import RelayServer
from tests.conftest import StartRelay
from tests.support.raw_http import exchange, request, signed_request
from tests.support.signing import event_body, sign

BODY = event_body()


@pytest.fixture(params=["c", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "c":
        if aiohttp.web_protocol.HttpRequestParser is aiohttp.http_parser.HttpRequestParserPy:
            pytest.skip("aiohttp's C parser is not available here")
    else:
        monkeypatch.setattr(
            aiohttp.web_protocol, "HttpRequestParser", aiohttp.http_parser.HttpRequestParserPy
        )
    yield request.param


@pytest.fixture
async def relay(parser: str, start_relay: StartRelay, redis_url: str) -> RelayServer:
    # A short client timeout: a request a parser leaves waiting for more is cut off soon.
    return await start_relay(redis_url, RELAY_CLIENT_TIMEOUT=1)


def chunked(body: bytes, size: str | None = None) -> bytes:
    return (size or f"{len(body):x}").encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"


def malformed() -> Iterator[tuple[str, Callable[[bytes, list[str]], bytes]]]:
    """(name, build(body, signature header lines)) for each way of framing a request wrong."""
    base = ["Host: relay", "Content-Type: application/json"]
    length = f"Content-Length: {len(BODY)}"

    def lines(*extra: str) -> Callable[[bytes, list[str]], bytes]:
        return lambda body, sig: request([*base, *sig, *extra], body)

    te = "Transfer-Encoding: chunked"
    yield (
        "content-length and chunked",
        lambda body, sig: request(
            [*base, *sig, f"Content-Length: {len(chunked(body))}", te], chunked(body)
        ),
    )
    yield (
        "chunked and content-length",
        lambda body, sig: request([*base, *sig, te, f"Content-Length: {len(body)}"], chunked(body)),
    )
    yield (
        "two different content-lengths",
        lambda body, sig: request(
            [*base, *sig, length, f"Content-Length: {len(body) + 5}"], body + b"12345"
        ),
    )
    yield "content-length twice", lines(length, length)
    yield "content-length as a list", lines(f"Content-Length: {len(BODY)}, {len(BODY)}")
    yield "content-length with a sign", lines(f"Content-Length: +{len(BODY)}")
    for name, size in [
        ("not hex", "zz"),
        ("0x prefix", f"0x{len(BODY):x}"),
        ("negative", f"-{len(BODY):x}"),
        ("shorter than the data", f"{len(BODY) - 10:x}"),
        ("overflowing", "f" * 40),
    ]:
        yield (
            f"chunk size {name}",
            lambda body, sig, size=size: request(  # type: ignore[misc]
                [*base, *sig, te], chunked(body, size)
            ),
        )
    yield (
        "transfer-encoding xchunked",
        lambda body, sig: request([*base, *sig, "Transfer-Encoding: xchunked"], chunked(body)),
    )
    yield (
        "transfer-encoding chunked, identity",
        lambda body, sig: request(
            [*base, *sig, "Transfer-Encoding: chunked, identity"], chunked(body)
        ),
    )
    yield (
        "space before the colon",
        lambda body, sig: request([*base, *sig, "Transfer-Encoding : chunked"], chunked(body)),
    )
    yield "chunked twice", lambda body, sig: request([*base, *sig, te, te], chunked(body))
    yield "obs-folded header", lines(length, "X-Folded: a", "  b")
    yield (
        "obs-folded signature",
        lambda body, sig: request(
            [*base, *sig[:-1], sig[-1][:20], " " + sig[-1][20:], length], body
        ),
    )
    yield (
        "bare LF after the request line",
        lambda body, sig: request([*base, *sig, length], body).replace(b"\r\n", b"\n", 1),
    )
    yield (
        "bare LF everywhere",
        lambda body, sig: request([*base, *sig, length], b"").replace(b"\r\n", b"\n") + body,
    )
    yield (
        "bare CR",
        lambda body, sig: request([*base, *sig, length], body).replace(b"\r\n", b"\r", 2),
    )
    yield "oversized header line", lines(length, "X-Big: " + "a" * 9000)
    yield (
        "oversized request line",
        lambda body, sig: request(
            [*base, *sig, length], body, path="/webhooks/anyformat?" + "a" * 9000
        ),
    )
    yield "too many headers", lines(length, *(f"X-H{i}: v" for i in range(200)))
    yield "NUL in a header", lines(length, "X-A: a\x00b")
    yield (
        "HTTP version 9.9",
        lambda body, sig: request([*base, *sig, length], body).replace(b"HTTP/1.1", b"HTTP/9.9", 1),
    )


@pytest.mark.parametrize(("name", "build"), list(malformed()), ids=[n for n, _ in malformed()])
async def test_malformed_framing_is_refused_and_nothing_is_written(
    relay: RelayServer, redis_sync: redis.Redis, name: str, build: Callable[..., bytes]
) -> None:
    signature = [f"{key}: {value}" for key, value in sign(BODY).items()]
    answer = await exchange(relay.public_port, build(BODY, signature))
    assert answer.closed, f"{name}: connection left open after {answer.data[:200]!r}"
    assert all(400 <= status < 500 for status in answer.statuses), answer.data[:300]
    assert "aiohttp" not in answer.data.decode("latin-1").lower()
    assert redis_sync.keys("anyformat:*") == []


async def test_the_same_delivery_framed_correctly_is_accepted(
    relay: RelayServer, redis_sync: redis.Redis
) -> None:
    answer = await exchange(
        relay.public_port, signed_request(BODY, sign(BODY), "Connection: close")
    )
    assert answer.statuses == [200]
    assert redis_sync.xlen("anyformat:events") == 1


async def test_a_correctly_chunked_delivery_is_accepted(
    relay: RelayServer, redis_sync: redis.Redis
) -> None:
    signature = [f"{key}: {value}" for key, value in sign(BODY).items()]
    half = len(BODY) // 2
    body = f"{half:x}\r\n".encode() + BODY[:half] + b"\r\n"
    body += f"{len(BODY) - half:x}\r\n".encode() + BODY[half:] + b"\r\n0\r\n\r\n"
    data = request(["Host: relay", "Transfer-Encoding: chunked", "Connection: close", *signature])
    answer = await exchange(relay.public_port, data + body)
    assert answer.statuses == [200]
    assert redis_sync.xlen("anyformat:events") == 1


async def test_a_delivery_smuggled_inside_a_refused_body_is_never_relayed(
    relay: RelayServer, redis_sync: redis.Redis
) -> None:
    """The classic CL.TE smuggle: a front end that frames by Content-Length passes a
    second, signed request hidden in the first one's chunked body."""
    hidden = signed_request(BODY, sign(BODY))
    outer_body = b"0\r\n\r\n" + hidden
    outer = request(
        ["Host: relay", f"Content-Length: {len(outer_body)}", "Transfer-Encoding: chunked"],
        outer_body,
    )
    answer = await exchange(relay.public_port, outer)
    assert answer.closed
    assert answer.statuses == [400]
    assert redis_sync.keys("anyformat:*") == []


async def test_pipelined_deliveries_are_each_accepted(
    relay: RelayServer, redis_sync: redis.Redis
) -> None:
    bodies = [event_body() for _ in range(3)]
    data = b"".join(signed_request(body, sign(body)) for body in bodies[:-1])
    data += signed_request(bodies[-1], sign(bodies[-1]), "Connection: close")
    answer = await exchange(relay.public_port, data)
    assert answer.statuses == [200, 200, 200]
    assert redis_sync.xlen("anyformat:events") == 3
