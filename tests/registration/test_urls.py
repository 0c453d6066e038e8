"""Canonical URL comparison: one address, however it is spelled."""

from __future__ import annotations

import pytest

from relay.registration.urls import canonical_url, same_url


@pytest.mark.parametrize(
    "spelling",
    [
        "https://relay.example.com/hook",
        "HTTPS://relay.example.com/hook",
        "https://Relay.EXAMPLE.com/hook",
        "https://relay.example.com:443/hook",
        " https://relay.example.com/hook",
    ],
)
def test_spellings_of_one_address_are_the_same(spelling: str) -> None:
    assert canonical_url(spelling) == "https://relay.example.com/hook"


@pytest.mark.parametrize(
    "other",
    [
        "https://relay.example.com/Hook",  # paths are case-sensitive
        "https://relay.example.com:8443/hook",
        "http://relay.example.com/hook",
        "https://relay.example.com/hook?x=1",
        "https://relay.example.org/hook",
    ],
)
def test_other_addresses_differ(other: str) -> None:
    assert not same_url(other, "https://relay.example.com/hook")


def test_default_ports_are_per_scheme_and_ipv6_keeps_its_brackets() -> None:
    assert canonical_url("http://h:80/x") == "http://h/x"
    assert canonical_url("http://h:443/x") == "http://h:443/x"
    assert canonical_url("https://[::1]:443/x") == "https://[::1]/x"
    assert canonical_url("https://h") == "https://h/"
    assert canonical_url("https://h:notaport/x") == "https://h:notaport/x"  # compared as is
