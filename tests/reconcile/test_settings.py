"""Reconciliation's settings: the contract's names and defaults, validated like the rest."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from relay.settings import Settings, describe_errors
from tests.support.signing import SECRET

REGISTERING = {"RELAY_REGISTER": "true", "ANYFORMAT_API_KEY": "afk_k",
               "RELAY_PUBLIC_URL": "https://r.example.com/h"}  # fmt: skip


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_on_by_default_every_hour_looking_back_a_week_at_most() -> None:
    s = settings(**REGISTERING)
    assert (s.reconcile, s.reconcile_interval, s.reconcile_max_lookback) == (True, 3600, 604_800)
    assert s.reconciling


def test_it_needs_registration_on_and_can_be_turned_off() -> None:
    assert not settings(**REGISTERING, RELAY_RECONCILE="false").reconciling
    static = settings(RELAY_REGISTER="false", RELAY_WEBHOOK_SECRET=SECRET, ANYFORMAT_API_KEY="k")
    assert static.reconcile and not static.reconciling


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"RELAY_RECONCILE": "maybe"}, "RELAY_RECONCILE: Input should be a valid boolean"),
        ({"RELAY_RECONCILE_INTERVAL": "0"}, "RELAY_RECONCILE_INTERVAL: Input should be greater"),
        ({"RELAY_RECONCILE_INTERVAL": "hourly"}, "RELAY_RECONCILE_INTERVAL: Input should be a"),
        ({"RELAY_RECONCILE_MAX_LOOKBACK": "-1"}, "RELAY_RECONCILE_MAX_LOOKBACK: Input should be"),
    ],
)
def test_bad_values_are_named(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**REGISTERING, **values)
    [line] = describe_errors(caught.value)
    assert line.startswith(expected), line


def test_no_reconciliation_looks_back_past_the_dedupe_memory() -> None:
    assert settings(**REGISTERING).reconcile_lookback == 604_800
    assert settings(**REGISTERING, RELAY_DEDUPE_TTL="86400").reconcile_lookback == 86_400
    assert settings(**REGISTERING, RELAY_RECONCILE_MAX_LOOKBACK="600").reconcile_lookback == 600
