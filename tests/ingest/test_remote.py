"""`remote` in every delivery line: the peer, or the client a trusted proxy names."""

from __future__ import annotations

import ipaddress

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from relay.ingest.remote import ClientAddress
from tests.conftest import StartRelay
from tests.ingest.conftest import DeliveryLines
from tests.support.raw_http import exchange, request
from tests.support.signing import event_body, sign

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]


class Peer:
    """The transport of a mocked request, from the address it reports."""

    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.address, 40000) if name == "peername" else default


def remote(peer: str, *forwarded: str, trusted: list[ipaddress.IPv4Network] | None = None) -> str:
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)
    request = make_mocked_request("POST", "/", headers=headers, transport=Peer(peer))
    return ClientAddress(PROXIES if trusted is None else trusted)(request)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # The peer is not a trusted proxy: whatever it claims is ignored.
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # A trusted proxy: the rightmost hop it did not add itself is the client...
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        # ...skipping a chain of trusted proxies, never believing what the client wrote.
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1, 10.1.2.3"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1", "10.1.2.3"], "198.51.100.1"),
        # Every hop trusted: the farthest one.
        ("10.0.0.5", ["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
        # A trusted proxy without the header: the proxy itself.
        ("10.0.0.5", [], "10.0.0.5"),
        # Garbage in the header: the last hop known to be real.
        ("10.0.0.5", ["198.51.100.1, <script>"], "10.0.0.5"),
        ("10.0.0.5", ["nonsense, 10.1.1.1"], "10.1.1.1"),
        # IPv6, and IPv4 mapped into IPv6 (a dual-stack listener's peers).
        ("2001:db8::1", ["2001:db8:ffff::2, 2600::1"], "2600::1"),
        ("::ffff:10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, forwarded: list[str], expected: str
) -> None:
    assert remote(peer, *forwarded) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert remote("10.0.0.5", "198.51.100.1", trusted=[]) == "10.0.0.5"


async def deliver_through(port: int, forwarded: str) -> None:
    body = event_body()
    signature = [f"{key}: {value}" for key, value in sign(body).items()]
    lines = ["Host: relay", f"Content-Length: {len(body)}", "Connection: close", *signature]
    answer = await exchange(port, request([*lines, f"X-Forwarded-For: {forwarded}"], body))
    assert answer.statuses == [200]


async def test_the_delivery_line_names_the_peer_when_no_proxy_is_trusted(
    start_relay: StartRelay, redis_url: str, delivery_lines: DeliveryLines
) -> None:
    server = await start_relay(redis_url)
    await deliver_through(server.public_port, "198.51.100.1")
    [line] = await delivery_lines()
    assert (line["remote"], line["status"]) == ("127.0.0.1", 200)


async def test_the_delivery_line_names_the_client_a_trusted_proxy_forwarded(
    start_relay: StartRelay, redis_url: str, delivery_lines: DeliveryLines
) -> None:
    server = await start_relay(redis_url, RELAY_TRUSTED_PROXIES="127.0.0.0/8, 10.0.0.0/8")
    await deliver_through(server.public_port, "6.6.6.6, 198.51.100.1, 10.0.0.7")
    [line] = await delivery_lines()
    assert (line["remote"], line["status"]) == ("198.51.100.1", 200)


async def test_refused_requests_are_logged_with_their_remote_too(
    start_relay: StartRelay,
    redis_url: str,
    delivery_lines: DeliveryLines,
    http: aiohttp.ClientSession,
) -> None:
    server = await start_relay(redis_url)
    url = f"http://127.0.0.1:{server.public_port}/webhooks/anyformat"
    async with http.post(url, data=b"{}", headers={"webhook-id": "x"}) as response:
        assert response.status == 401
        assert response.headers["Server"] == "anyformat-relay"
    answer = await exchange(server.public_port, b"POST /webhooks/anyformat HTTP/1.1\nX: y\n\n")
    assert answer.statuses == [400]
    assert "Server: anyformat-relay" in answer.headers
    assert [(line["status"], line["remote"]) for line in await delivery_lines()] == [
        (401, "127.0.0.1"),
        (400, "127.0.0.1"),
    ]
