"""Domains nobody can receive webhooks on (RFC 2606 / 6761): a public URL on one of them is
a placeholder left in a manifest, and registering it creates a subscription AnyFormat can
never deliver to. ``relay run`` refuses it while registration is on."""

from __future__ import annotations

from urllib.parse import urlsplit

RESERVED_NAMES = ("example.com", "example.net", "example.org", "localhost")
RESERVED_SUFFIXES = (".example", ".test", ".invalid", ".localhost")


def reserved_domain(url: str) -> str | None:
    """The reserved domain ``url``'s host falls in, or ``None`` when it is a real one."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    for name in RESERVED_NAMES:
        if host == name or host.endswith("." + name):
            return name
    for suffix in RESERVED_SUFFIXES:
        if host.endswith(suffix) or host == suffix[1:]:
            return suffix
    return None
