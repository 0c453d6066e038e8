"""A placeholder public URL (example.com, .test …) is refused before anything registers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import relay
from relay.reserved_domains import reserved_domain
from relay.settings import Settings

ROOT = Path(relay.__file__).resolve().parents[1]

RESERVED = [
    "https://relay.example.com/webhooks/anyformat",
    "https://EXAMPLE.COM/h",
    "https://example.org/h",
    "https://relay.example/h",
    "https://relay.corp.test/h",
    "https://relay.invalid/h",
    "https://localhost/h",
    "https://relay.localhost:8443/h",
]
REAL = [
    "https://relay.anyformat.ai/h",
    "https://example.company.io/h",  # contains "example", is not the reserved domain
    "https://relay.testing.net/h",
    "https://notexample.com/h",
]


@pytest.mark.parametrize("url", RESERVED)
def test_reserved_domains_are_recognised(url: str) -> None:
    assert reserved_domain(url) is not None


@pytest.mark.parametrize("url", REAL)
def test_real_domains_are_not(url: str) -> None:
    assert reserved_domain(url) is None


def base(**values: object) -> Settings:
    return Settings(_env_file=None, ANYFORMAT_API_KEY="k", **values)  # type: ignore[call-arg]


def test_relay_run_refuses_a_reserved_public_url_only_while_registering() -> None:
    [line] = base(RELAY_PUBLIC_URL=RESERVED[0]).serving_problems()
    assert "reserved domain example.com" in line
    assert base(RELAY_PUBLIC_URL=REAL[0]).serving_problems() == []
    # Registration off: the URL is only a path and a record name, never sent to AnyFormat.
    unregistered = base(RELAY_PUBLIC_URL=RESERVED[0], RELAY_REGISTER=False)
    assert unregistered.serving_problems() == []


@pytest.mark.parametrize("command", ["run", "register"])
def test_the_commands_exit_2_with_one_line(command: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ANYFORMAT_"))}
    env.update(PYTHONPATH=str(ROOT), ANYFORMAT_API_KEY="k", RELAY_PUBLIC_URL=RESERVED[0],
               RELAY_REDIS_URL="redis://127.0.0.1:9/0")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "relay", command], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "relay: configuration error: RELAY_PUBLIC_URL is on the reserved domain example.com"
        + (" (a placeholder?): AnyFormat cannot deliver there; set the relay's real public URL"
           if command == "run" else ": AnyFormat cannot deliver there")
    ]  # fmt: skip
