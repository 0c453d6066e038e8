"""Every value is validated at start-up, and a bad one is named in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from relay.settings import Settings, describe_errors, mask_url
from tests.support.settings import BASE, problems, settings
from tests.support.signing import SECRET


def test_defaults_follow_the_contract() -> None:
    s = settings()
    assert (s.redis_url, s.port, s.admin_port, s.host) == (
        "redis://localhost:6379/0", 8080, 9090, "0.0.0.0",
    )  # fmt: skip
    assert s.events == ["extraction.completed", "extraction.failed"]
    assert (s.signature_scheme, s.signature_tolerance) == ("standard", 300)
    assert (s.stream_prefix, s.stream_maxlen, s.dedupe_ttl) == ("anyformat", 1_000_000, 604_800)
    assert (s.max_body_bytes, s.log_level, s.log_format) == (1_048_576, "info", "json")
    assert s.path == "/webhooks/anyformat"
    assert Settings.model_fields["self_register"].default is True
    assert (s.client_timeout, s.keepalive_timeout, s.max_connections) == (10, 15, 4096)
    assert (s.trusted_proxies, s.admin_bind_host) == ([], "0.0.0.0")


def test_trusted_proxies_are_addresses_or_networks() -> None:
    s = settings(RELAY_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7,2001:db8::/32")
    assert [str(network) for network in s.trusted_proxies] == [
        "10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32",
    ]  # fmt: skip


def test_the_admin_listener_binds_the_public_host_unless_told_otherwise() -> None:
    assert settings(RELAY_HOST="192.0.2.1").admin_bind_host == "192.0.2.1"
    assert settings(RELAY_ADMIN_HOST="127.0.0.1").admin_bind_host == "127.0.0.1"


def test_the_webhook_path_defaults_to_that_of_the_public_url() -> None:
    assert settings(RELAY_PUBLIC_URL="https://r.example.com/in/af").path == "/in/af"
    assert settings(RELAY_PUBLIC_URL="https://r.example.com").path == "/"
    explicit = settings(RELAY_WEBHOOK_PATH="/x", RELAY_PUBLIC_URL="https://r.example.com/y")
    assert explicit.path == "/x"


def test_lists_are_comma_separated() -> None:
    s = settings(RELAY_EVENTS="a, b,,c", RELAY_WEBHOOK_SECRET=f"{SECRET}, {SECRET}")
    assert s.events == ["a", "b", "c"]
    assert s.webhook_secrets == [SECRET, SECRET]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"RELAY_PORT": "70000"}, "RELAY_PORT: Input should be less than or equal to 65535"),
        ({"RELAY_PORT": "http"}, "RELAY_PORT: Input should be a valid integer"),
        ({"RELAY_ADMIN_PORT": "-1"}, "RELAY_ADMIN_PORT: Input should be greater than"),
        ({"RELAY_SIGNATURE_TOLERANCE": "-5"}, "RELAY_SIGNATURE_TOLERANCE: Input should be greater"),
        ({"RELAY_PUBLIC_URL": "http://r.example.com/h"}, "RELAY_PUBLIC_URL: must be an https://"),
        ({"RELAY_PUBLIC_URL": "https:///h"}, "RELAY_PUBLIC_URL: must name a host"),
        (
            {"RELAY_PUBLIC_URL": "https://r.example.com/" + "a" * 2100},
            "RELAY_PUBLIC_URL: must be at most 2083 characters",
        ),
        ({"RELAY_REDIS_URL": "http://localhost"}, "RELAY_REDIS_URL: must start with redis://"),
        ({"RELAY_SIGNATURE_SCHEME": "md5"}, "RELAY_SIGNATURE_SCHEME: Input should be"),
        ({"RELAY_LOG_LEVEL": "loud"}, "RELAY_LOG_LEVEL: Input should be"),
        ({"RELAY_STREAM_MAXLEN": "0"}, "RELAY_STREAM_MAXLEN: Input should be greater"),
        ({"RELAY_DEDUPE_TTL": "0"}, "RELAY_DEDUPE_TTL: Input should be greater"),
        ({"RELAY_MAX_BODY_BYTES": "lots"}, "RELAY_MAX_BODY_BYTES: Input should be a valid integer"),
        ({"RELAY_WEBHOOK_PATH": "hooks"}, "RELAY_WEBHOOK_PATH: must start with '/'"),
        ({"RELAY_STREAM_PREFIX": "a}b"}, "RELAY_STREAM_PREFIX: stream name 'a}b'"),
        ({"RELAY_ROUTES_FILE": "/nonexistent.yaml"}, "RELAY_ROUTES_FILE: cannot read"),
        ({"RELAY_TLS_CERT_FILE": "/nonexistent.pem"}, "RELAY_TLS_CERT_FILE: /nonexistent.pem is"),
        ({"RELAY_PORT": "9090"}, "RELAY_ADMIN_PORT must differ from RELAY_PORT"),
        ({"RELAY_WEBHOOK_SECRET": "whsec_***"}, "RELAY_WEBHOOK_SECRET is not a Standard"),
        ({"RELAY_WEBHOOK_SECRET": " , "}, "RELAY_WEBHOOK_SECRET: is set but holds no secret"),
        ({"RELAY_CLIENT_TIMEOUT": "0"}, "RELAY_CLIENT_TIMEOUT: Input should be greater than 0"),
        ({"RELAY_KEEPALIVE_TIMEOUT": "-1"}, "RELAY_KEEPALIVE_TIMEOUT: Input should be greater"),
        ({"RELAY_MAX_CONNECTIONS": "0"}, "RELAY_MAX_CONNECTIONS: Input should be greater"),
        ({"RELAY_TRUSTED_PROXIES": "10.0.0.0/33"}, "RELAY_TRUSTED_PROXIES: '10.0.0.0/33' is not"),
        ({"RELAY_TRUSTED_PROXIES": "proxy.local"}, "RELAY_TRUSTED_PROXIES: 'proxy.local' is not"),
    ],
)
def test_bad_values_are_named_with_the_reason(values: dict[str, Any], expected: str) -> None:
    values = {**BASE, **values}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    [line] = describe_errors(caught.value)
    assert line.startswith(expected), line


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, []),
        ({"RELAY_WEBHOOK_SECRET": None, "RELAY_PUBLIC_URL": "https://r.example.com/h"}, []),
        ({"RELAY_WEBHOOK_SECRET": None}, ["RELAY_WEBHOOK_SECRET is required when"]),
        (
            {"RELAY_REGISTER": "true"},
            [
                "ANYFORMAT_API_KEY is required while RELAY_REGISTER=true",
                "RELAY_PUBLIC_URL is required while RELAY_REGISTER=true",
            ],
        ),
        (
            {"RELAY_REGISTER": "true", "ANYFORMAT_API_KEY": "k"},
            ["RELAY_PUBLIC_URL is required while RELAY_REGISTER=true"],
        ),
    ],
)
def test_what_serving_needs_is_checked_by_relay_run_only(
    values: dict[str, Any], expected: list[str]
) -> None:
    values = {k: v for k, v in {**BASE, **values}.items() if v is not None}
    found = Settings(_env_file=None, **values).serving_problems()
    assert len(found) == len(expected)
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start)


def test_a_secret_value_is_never_echoed_in_an_error() -> None:
    [line] = problems(RELAY_WEBHOOK_SECRET="whsec_***very-secret***")
    assert "very-secret" not in line


def test_the_routes_file_is_checked_readable_and_left_to_the_routing_code(
    tmp_path: Path,
) -> None:
    """Its content is parsed by ``relay.streams.routes`` (see tests/cli/test_failures.py
    for the one line a bad one ends the process with)."""
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - event: x\n    streams: 5\n")
    assert settings(RELAY_ROUTES_FILE=str(routes)).routes_file == routes
    assert settings(RELAY_ROUTES_FILE=" ").routes_file is None
    [line] = problems(RELAY_ROUTES_FILE=str(tmp_path))
    assert line == f"RELAY_ROUTES_FILE: cannot read {tmp_path}: Is a directory"


def test_a_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(f"RELAY_REGISTER=false\nRELAY_WEBHOOK_SECRET={SECRET}\n"
                                   "RELAY_PORT=8181\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for name in ("RELAY_REGISTER", "RELAY_WEBHOOK_SECRET", "RELAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().port == 8181


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH carried over: the command must run the code under test, not an installed copy.
    python_path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        env={"PATH": "/usr/bin:/bin", **python_path, **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )


def test_relay_config_prints_the_effective_settings_with_secrets_masked() -> None:
    result = run_cli(
        "config",
        env={**BASE, "ANYFORMAT_API_KEY": "sk_live_topsecret", "RELAY_PORT": "8181"},
    )
    assert result.returncode == 0, result.stderr
    assert "RELAY_PORT=8181" in result.stdout
    assert "ANYFORMAT_API_KEY=********" in result.stdout
    assert "RELAY_WEBHOOK_SECRET=********" in result.stdout
    assert "RELAY_WEBHOOK_PATH=/webhooks/anyformat" in result.stdout
    assert "topsecret" not in result.stdout and SECRET not in result.stdout


def test_relay_config_json() -> None:
    import json

    result = run_cli("config", "--json", env=BASE)
    document = json.loads(result.stdout)
    assert document["RELAY_REGISTER"] == "false"
    assert document["RELAY_WEBHOOK_SECRET"] == "********"


def test_retention_targets_default_off_and_the_hard_cap_sits_above_the_target() -> None:
    s = settings()
    assert (s.stream_max_age, s.stream_hard_maxlen) == (0, 0)
    capped = settings(RELAY_STREAM_MAXLEN="100", RELAY_STREAM_HARD_MAXLEN="100")
    assert capped.stream_hard_maxlen == 100
    assert problems(RELAY_STREAM_MAXLEN="100", RELAY_STREAM_HARD_MAXLEN="99") == [
        "RELAY_STREAM_HARD_MAXLEN must be 0 (off) or at least RELAY_STREAM_MAXLEN"
    ]
    assert problems(RELAY_STREAM_MAX_AGE="-1")[0].startswith(
        "RELAY_STREAM_MAX_AGE: Input should be greater"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:hunter2@redis:6379/0", "redis://user:***@redis:6379/0"),
        ("rediss://:hunter2@redis.example.com/1", "rediss://:***@redis.example.com/1"),
        ("redis://user:p%40ss:w@[2001:db8::1]:6379", "redis://user:***@[2001:db8::1]:6379"),
        ("redis://user:a@b@host/0", "redis://user:***@host/0"),
        ("unix://:hunter2@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://redis/0?password=hunter2&db=1", "redis://redis/0?password=***&db=1"),
        ("redis://user@redis/0", "redis://user@redis/0"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("https://api.anyformat.ai", "https://api.anyformat.ai"),
        ("not a url", "not a url"),
    ],
)
def test_the_password_of_a_url_is_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_relay_config_masks_the_password_of_every_url() -> None:
    env = {
        **BASE,
        "RELAY_REDIS_URL": "redis://relay:hunter2@redis:6379/0",
        "ANYFORMAT_BASE_URL": "https://bot:hunter3@api.anyformat.ai",
        "RELAY_PUBLIC_URL": "https://relay.example.com/webhooks/anyformat?password=hunter4",
        "RELAY_REDIS_SENTINELS": "sentinel-a:26379,sentinel-b:26379",
        "RELAY_REDIS_SENTINEL_PASSWORD": "hunter5",
    }
    text = run_cli("config", env=env)
    as_json = run_cli("config", "--json", env=env)
    for result in (text, as_json):
        assert result.returncode == 0, result.stderr
        assert "hunter" not in result.stdout
    assert "RELAY_REDIS_URL=redis://relay:***@redis:6379/0" in text.stdout
    assert "ANYFORMAT_BASE_URL=https://bot:***@api.anyformat.ai" in text.stdout
    assert "password=***" in text.stdout
    assert '"RELAY_REDIS_URL": "redis://relay:***@redis:6379/0"' in as_json.stdout
