"""The client address a delivery line names (``remote``).

The peer of the connection, unless that peer is one of ``RELAY_TRUSTED_PROXIES``: then
``X-Forwarded-For`` is read from the right, each trusted hop skipped, and the first hop
that is not trusted is the client. Hops left of it were written by the client itself and
prove nothing, so they are never believed; with no trusted proxies the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import hdrs, web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """``remote`` for a request, given the proxies whose ``X-Forwarded-For`` is believed."""

    def __init__(self, trusted: Sequence[Network]) -> None:
        self._trusted = tuple(trusted)

    def _is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self._trusted)

    def __call__(self, request: web.BaseRequest) -> str:
        peer = request.remote or ""
        if not self._trusted:
            return peer
        nearest = _address(peer)
        if nearest is None or not self._is_trusted(nearest):
            return peer
        forwarded = request.headers.getall(hdrs.X_FORWARDED_FOR, ())
        hops = [hop for value in forwarded for hop in value.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # Garbage where an address should be: the proxy that passed it on is the
                # last hop known to be real.
                return str(nearest)
            nearest = address
            if not self._is_trusted(address):
                return str(address)
        return str(nearest)  # every hop trusted: the farthest one
