"""The dev loop in two terminals: every command finds the running `relay dev`'s Redis, a
second `relay dev` leaves the first untouched, `--embedded` forces the embedded server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.dev.test_dev import cli
from tests.support.process import RelayProcess
from tests.support.redis_server import free_port

pytestmark = pytest.mark.process


def home_env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[RelayProcess]:
    """A `relay dev` on the embedded server (nothing answers at its RELAY_REDIS_URL)."""
    relay = RelayProcess(
        {**home_env(tmp_path), "RELAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "dev"
    )
    relay.start()
    yield relay
    relay.kill()


def state_file(home: Path) -> Path:
    return home / ".cache/anyformat-relay/dev.json"


def test_stats_and_dlq_in_a_new_terminal_use_the_dev_redis_and_say_so(
    tmp_path: Path, dev: RelayProcess
) -> None:
    assert cli(tmp_path, "trigger", "extraction.completed").returncode == 0
    redis_url = json.loads(state_file(tmp_path).read_text())["redis_url"]

    stats = cli(tmp_path, "stats", "--json")  # a new terminal: no RELAY_REDIS_URL
    assert stats.returncode == 0, stats.stderr
    lengths = {item["stream"]: item["length"] for item in json.loads(stats.stdout)}
    assert lengths["anyformat:events"] == 1
    assert f"using the Redis of the running relay dev (pid {dev.process.pid}): {redis_url}" in (  # type: ignore[union-attr]
        stats.stderr
    )
    listed = cli(tmp_path, "dlq", "list", "anyformat:events")
    assert listed.returncode == 0 and "no dead letters" in listed.stdout
    assert "using the Redis of the running relay dev" in listed.stderr

    # An explicit RELAY_REDIS_URL wins, and nothing is said about the dev relay.
    elsewhere = cli(tmp_path, "stats", RELAY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert elsewhere.returncode == 1
    assert "relay dev" not in elsewhere.stderr and "cannot reach Redis" in elsewhere.stderr


def test_once_the_dev_relay_stops_the_commands_use_the_configured_redis(
    tmp_path: Path, dev: RelayProcess
) -> None:
    assert dev.terminate() == 0
    assert not state_file(tmp_path).exists()
    stats = cli(tmp_path, "stats", RELAY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert "relay dev" not in stats.stderr


def test_a_second_relay_dev_leaves_the_first_untouched(tmp_path: Path, dev: RelayProcess) -> None:
    before = state_file(tmp_path).read_bytes()
    second = cli(tmp_path, "dev", RELAY_HOST="127.0.0.1", RELAY_PORT=str(dev.port),
                 RELAY_ADMIN_PORT=str(free_port()))  # fmt: skip
    assert second.returncode == 1
    [line] = second.stderr.strip().splitlines()
    assert f"port {dev.port} is in use by the relay dev already running" in line
    assert "Traceback" not in second.stderr
    assert state_file(tmp_path).read_bytes() == before  # secret and Redis unchanged
    sent = cli(tmp_path, "trigger", "extraction.completed")
    assert sent.returncode == 0 and sent.stdout.startswith('200 {"status":"accepted"')


def test_a_second_relay_dev_on_other_ports_runs(tmp_path: Path, dev: RelayProcess) -> None:
    other = RelayProcess({**home_env(tmp_path), "RELAY_REDIS_URL": "redis://127.0.0.1:9/0"}, "dev")
    other.start()
    try:
        state = json.loads(state_file(tmp_path).read_text())
        assert state["url"].startswith(other.url)  # the newest one is the one commands use
        assert cli(tmp_path, "trigger").returncode == 0
    finally:
        assert other.terminate() == 0


def test_embedded_is_forced_even_when_a_redis_answers(
    tmp_path: Path, redis_sync: redis.Redis, redis_url: str
) -> None:
    real = redis_sync
    relay = RelayProcess({**home_env(tmp_path), "RELAY_REDIS_URL": redis_url},
                         "dev", "--embedded")  # fmt: skip
    relay.start()
    try:
        output = relay.output()
        assert "embedded in this process" in output and "development only; --embedded)" in output
        assert "redis_version_unknown" not in output
        assert cli(tmp_path, "trigger").returncode == 0
        assert real.dbsize() == 0  # nothing reached the Redis that answered
        tailed = cli(tmp_path, "tail", "anyformat:events", "--from-start", "--count", "1")
        assert tailed.returncode == 0, tailed.stderr
    finally:
        assert relay.terminate() == 0


def test_without_embedded_an_answering_redis_is_used(
    tmp_path: Path, redis_sync: redis.Redis, redis_url: str
) -> None:
    real = redis_sync
    relay = RelayProcess({**home_env(tmp_path), "RELAY_REDIS_URL": redis_url}, "dev")
    relay.start()
    try:
        assert "(answering)" in relay.output()
        assert cli(tmp_path, "trigger").returncode == 0
        assert real.xlen("anyformat:events") == 1
    finally:
        assert relay.terminate() == 0
