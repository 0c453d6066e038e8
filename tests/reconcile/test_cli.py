"""`relay reconcile` refusing what it cannot do, clearly and without secrets."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from tests.reconcile.conftest import Organisation
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.redis_server import RedisServer


def relay_reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ANYFORMAT_"))}
    return subprocess.run(
        [sys.executable, "-m", "relay", "reconcile", *args],
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def env_for(redis_url: str, fake_api: FakeAnyFormat, **extra: str) -> dict[str, str]:
    return {"RELAY_REDIS_URL": redis_url, "ANYFORMAT_API_KEY": API_KEY,
            "ANYFORMAT_BASE_URL": fake_api.url, **extra}  # fmt: skip


def test_without_an_api_key_it_says_so(redis_url: str) -> None:
    done = relay_reconcile({"RELAY_REDIS_URL": redis_url})
    assert done.returncode == 2
    assert "ANYFORMAT_API_KEY is required for this command" in done.stderr


def test_a_bad_since_is_named(redis_url: str, fake_api: FakeAnyFormat) -> None:
    done = relay_reconcile(env_for(redis_url, fake_api), "--since", "last tuesday")
    assert done.returncode == 2 and "--since" in done.stderr and "duration" in done.stderr
    assert fake_api.v3_calls() == []


def test_since_beyond_the_max_lookback_is_cut_back_and_said(
    redis_url: str, fake_api: FakeAnyFormat, org: Organisation
) -> None:
    workflow = org.workflow()
    inside = org.finished(workflow, "processed", seconds_ago=30 * 60)
    outside = org.finished(workflow, "processed", seconds_ago=90 * 60)
    env = env_for(redis_url, fake_api, RELAY_RECONCILE_MAX_LOOKBACK="3600")
    done = relay_reconcile(env, "--since", "7d", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "further back than RELAY_RECONCILE_MAX_LOOKBACK" in done.stdout
    assert f"reconciled:{inside}:processed" in done.stdout and outside not in done.stdout


def test_a_rejected_key_is_a_clear_error_without_the_key(
    redis_url: str, fake_api: FakeAnyFormat
) -> None:
    env = env_for(redis_url, fake_api, ANYFORMAT_API_KEY="afk_revoked_1122334455")
    done = relay_reconcile(env)
    assert done.returncode == 1
    assert "AnyFormat rejected ANYFORMAT_API_KEY (HTTP 401)" in done.stderr
    assert "afk_revoked_1122334455" not in done.stdout + done.stderr


def test_while_a_relay_sweeps_it_refuses_to_run_a_second_sweep(
    redis_url: str, redis_sync: redis.Redis, fake_api: FakeAnyFormat
) -> None:
    redis_sync.set("anyformat:reconcile:lock", "someone-else", px=30_000)
    done = relay_reconcile(env_for(redis_url, fake_api))
    assert done.returncode == 1 and "another relay is reconciling right now" in done.stderr
    assert fake_api.v3_calls() == []
    dry = relay_reconcile(env_for(redis_url, fake_api), "--dry-run")  # reads only: allowed
    assert dry.returncode == 0 and "would write 0 event(s)" in dry.stdout


def test_redis_down_is_a_clear_error(fake_api: FakeAnyFormat, org: Organisation) -> None:
    org.finished(org.workflow(), "processed", seconds_ago=60)
    gone = RedisServer()  # never started: nothing listens on its port
    try:
        done = relay_reconcile(env_for(gone.url, fake_api, RELAY_REDIS_TIMEOUT="1"))
    finally:
        gone.close()
    assert done.returncode == 1 and "Redis: ConnectionError" in done.stderr
    assert "Traceback" not in done.stderr
