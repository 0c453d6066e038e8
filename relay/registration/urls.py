"""Which listed subscriptions are for our URL: compared in canonical form.

AnyFormat may echo a URL back with another spelling of the same address (``HTTPS://Relay.
Example.com:443/hook``); comparing bytes would take our own subscription for someone else's
and leave it behind. The path is compared as is: it is case-sensitive.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """``url`` with scheme and host lower-case and the scheme's default port dropped."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url  # not a URL we could have registered: compared as is
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, parts.fragment))


def same_url(a: str, b: str) -> bool:
    return canonical_url(a) == canonical_url(b)
