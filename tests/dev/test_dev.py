"""`relay dev`, `relay trigger`, `relay tail` and a worker, as a newcomer runs them."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import redis

from tests.support.process import RelayProcess
from tests.support.redis_server import free_port

pytestmark = pytest.mark.process
ROOT = str(Path(__file__).resolve().parents[2])


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ANYFORMAT_"))}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        env={**clean, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), **env},
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def api_status(url: str, token: str) -> int:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request("GET", parts.path, headers={"Authorization": f"Bearer {token}"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_whole_loop_with_no_redis_and_no_account(tmp_path: Path) -> None:
    no_redis = f"redis://127.0.0.1:{free_port()}/0"
    dev = RelayProcess(
        {"RELAY_REDIS_URL": no_redis, "HOME": str(tmp_path),
         "XDG_CACHE_HOME": str(tmp_path / ".cache")},
        "dev",
    )  # fmt: skip
    dev.start()
    try:
        banner = dev.output()
        assert "embedded in this process" in banner and "development only" in banner
        state = json.loads((tmp_path / ".cache/anyformat-relay/dev.json").read_text())
        assert state["secret"] in banner and state["secret"].startswith("whsec_")
        assert oct((tmp_path / ".cache/anyformat-relay/dev.json").stat().st_mode)[-3:] == "600"
        [console] = [line.split() for line in banner.splitlines() if "console" in line]
        assert console[1].endswith("/console/") and "?" not in console[1]  # no token in it
        assert console[2] == "token" and len(console[3]) >= 16
        api = console[1].replace("/console/", "/api/nothing")
        assert api_status(api, console[3]) == 404  # let in: the printed token is the one
        assert api_status(api, console[3] + "x") == 401

        sent = cli(tmp_path, "trigger", "extraction.completed", "--workflow-id", "wf-dev")
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith('200 {"status":"accepted"')

        tailed = cli(tmp_path, "tail", "anyformat:events", "--from-start", "--count", "1", "--json")
        assert tailed.returncode == 0, tailed.stderr
        entry = json.loads(tailed.stdout)
        assert entry["event"] == "extraction.completed" and entry["workflow_id"] == "wf-dev"
        assert entry["payload"]["data"]["status"] == "processed"

        worker = RelayProcess(
            {"RELAY_REDIS_URL": state["redis_url"], "TEST_REDIS_URL": state["redis_url"]},
            "worker", "--stream", "anyformat:events", "--group", "dev",
            "--handler", "tests.support.handlers:record", "--start-id", "0",
            cwd=ROOT,
        )  # fmt: skip
        worker.start(wait_ready=False)
        try:
            embedded = redis.Redis.from_url(state["redis_url"])
            worker.wait_for(lambda: embedded.llen("handled"), what="the entry handled")
            [handled] = [json.loads(item) for item in embedded.lrange("handled", 0, -1)]
            assert handled["id"] == entry["id"] and handled["attempt"] == 1
        finally:
            assert worker.terminate() == 0
    finally:
        assert dev.terminate() == 0


def test_trigger_with_a_wrong_secret_reports_the_401(tmp_path: Path) -> None:
    no_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / ".cache")}
    dev = RelayProcess({**env, "RELAY_REDIS_URL": no_redis}, "dev")
    dev.start()
    try:
        wrong = "whsec_" + "d3JvbmctYnV0LXdlbGwtZm9ybWVkLXNlY3JldA=="
        sent = cli(tmp_path, "trigger", "extraction.failed", "--secret", wrong)
        assert sent.returncode == 1
        assert "answered 401: the relay refused the signature (wrong secret?)" in sent.stderr
    finally:
        dev.terminate()


def test_trigger_without_a_relay_says_it_cannot_reach_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/anyformat"
    sent = cli(tmp_path, "trigger", "--url", url, "--secret", "whsec_c2VjcmV0c2VjcmV0")
    assert sent.returncode == 1 and f"cannot reach {url}" in sent.stderr
    assert "Traceback" not in sent.stderr
