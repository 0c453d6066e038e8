"""`relay worker` processes: crashes, graceful stops, clear start-up errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.support.entry_schemas import relay_fields
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.process

ROOT = str(Path(__file__).resolve().parents[2])
STREAM, GROUP = "anyformat:events", "billing"


def worker(server: RedisServer, handler: str, *extra: str, **env: str) -> RelayProcess:
    process = RelayProcess(
        {"RELAY_REDIS_URL": server.url, "TEST_REDIS_URL": server.url, **env},
        "worker", "--stream", STREAM, "--group", GROUP, "--handler", handler,
        "--start-id", "0", "--backoff-base", "0.05",
        cwd=ROOT,
    )  # fmt: skip
    process.args = (*process.args, "--metrics-port", str(process.admin_port), *extra)
    return process


def records(client: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(item) for item in client.lrange("handled", 0, -1)]


def publish(client: redis.Redis) -> bytes:
    return client.xadd(STREAM, relay_fields(1, extraction_id="x"))


def test_a_worker_killed_mid_handler_has_its_entry_finished_by_another(
    own_redis: RedisServer,
) -> None:
    client = own_redis.client()
    entry_id = publish(client).decode()
    first = worker(own_redis, "tests.support.handlers:slow", "--claim-idle", "1",
                   HANDLER_SECONDS="30")  # fmt: skip
    first.start(wait_ready=False)
    first.wait_until("/healthz")
    first.wait_for(lambda: any(r["phase"] == "started" for r in records(client)),
                   what="the first worker's handler started")  # fmt: skip
    first.process.kill()  # type: ignore[union-attr]
    first.process.wait()  # type: ignore[union-attr]

    second = worker(own_redis, "tests.support.handlers:slow", "--claim-idle", "1",
                    HANDLER_SECONDS="0.1")  # fmt: skip
    second.start(wait_ready=False)
    try:
        second.wait_for(lambda: any(r["phase"] == "done" for r in records(client)),
                        what="the entry handled by the second worker")  # fmt: skip
        second.wait_for(lambda: client.xpending(STREAM, GROUP)["pending"] == 0,
                        what="nothing pending")  # fmt: skip
    finally:
        assert second.terminate() == 0
    done = [r for r in records(client) if r["phase"] == "done"]
    assert [(r["entry_id"], r["attempt"]) for r in done] == [(entry_id, 2)]
    assert client.xlen(f"{STREAM}:dlq") == 0
    assert "entry_taken_over" in second.output()


def test_sigterm_lets_the_handler_in_flight_finish_acks_it_and_exits_0(
    own_redis: RedisServer,
) -> None:
    client = own_redis.client()
    publish(client)
    process = worker(own_redis, "tests.support.handlers:slow", HANDLER_SECONDS="1.5")
    process.start(wait_ready=False)
    try:
        process.wait_for(lambda: any(r["phase"] == "started" for r in records(client)),
                         what="the handler started")  # fmt: skip
        process.signal(signal.SIGTERM)
        assert process.process.wait(timeout=30) == 0  # type: ignore[union-attr]
    finally:
        process.kill()
    assert [r["phase"] for r in records(client)] == ["started", "done"]
    assert client.xpending(STREAM, GROUP)["pending"] == 0
    lines = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
    assert [line["outcome"] for line in lines if line["msg"] == "attempt"] == ["handled"]


def test_worker_metrics_endpoint(own_redis: RedisServer) -> None:
    client = own_redis.client()
    publish(client)
    process = worker(own_redis, "tests.support.handlers:record")
    process.start(wait_ready=False)
    try:
        process.wait_until("/readyz")  # ready: the group exists
        process.wait_for(lambda: client.xpending(STREAM, GROUP)["pending"] == 0
                         and records(client), what="the entry handled and acked")  # fmt: skip
        import urllib.request

        url = f"http://127.0.0.1:{process.admin_port}/metrics"
        handled = f'relay_worker_handled_total{{group="{GROUP}",stream="{STREAM}"}} 1.0'

        def counted() -> str | None:  # counted just after the ack: not in the same instant
            with urllib.request.urlopen(url) as response:
                text = response.read().decode()
            return text if handled in text else None

        text = process.wait_for(counted, what="the handled entry counted on /metrics")
    finally:
        assert process.terminate() == 0
    assert "relay_worker_handler_duration_seconds_bucket" in text
    assert "relay_worker_in_flight" in text
    labels = f'{{group="{GROUP}",stream="{STREAM}"}}'
    for zero in ("relay_worker_entries_lost_total", "relay_worker_held"):
        assert f"{zero}{labels} 0.0" in text  # present before anything happens: alertable
    for reason in ("outage", "operator"):
        paused = f'relay_worker_paused{{group="{GROUP}",reason="{reason}",stream="{STREAM}"}}'
        assert f"{paused} 0.0" in text


def test_worker_readyz_follows_redis(own_redis: RedisServer) -> None:
    process = worker(own_redis, "tests.support.handlers:record")
    process.start(wait_ready=False)

    try:
        process.wait_until("/readyz")
        own_redis.kill()
        process.wait_for(
            lambda: (
                _get(process, "/readyz")
                == (503, '{"status": "not_ready", "reason": "redis_unreachable"}')
            ),
            what="/readyz saying redis_unreachable",
        )
        own_redis.start()
        # The group is back too (recreated).
        process.wait_for(lambda: _get(process, "/readyz")[0] == 200, what="/readyz 200 again")
    finally:
        assert process.terminate() == 0


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("tests.support.nowhere:handle", "cannot import 'tests.support.nowhere'"),
        ("tests.support.handlers:missing", "has no attribute 'missing'"),
        ("tests.support.handlers:not_async", "is not an async callable"),
        ("no_colon", "is not of the form package.module:function"),
    ],
)
def test_a_bad_handler_is_a_clear_error_at_start(handler: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "worker", "--stream", "s", "--group", "g",
         "--handler", handler],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_lifespan_is_a_clear_error_at_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "worker", "--stream", "s", "--group", "g",
         "--handler", "tests.support.handlers:record",
         "--lifespan", "tests.support.handlers:record"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a lifespan" in result.stderr and "asynccontextmanager" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_started_before_redis_waits_for_it(own_redis: RedisServer) -> None:
    own_redis.kill()
    process = worker(own_redis, "tests.support.handlers:record")
    process.start(wait_ready=False)
    try:
        # The start-up version check is the first to find Redis away.
        process.wait_for(lambda: '"msg":"redis_unavailable_at_start"' in process.output(),
                         what="redis_unavailable_at_start logged")  # fmt: skip
        assert process.process.poll() is None  # type: ignore[union-attr]
        status, body = _get(process, "/readyz")
        assert (status, json.loads(body)["reason"]) == (503, "starting")
        own_redis.start()
        entry_id = publish(own_redis.client()).decode()
        process.wait_for(lambda: [r["entry_id"] for r in records(own_redis.client())]
                         == [entry_id], what="the entry handled once Redis is up")  # fmt: skip
        assert _get(process, "/readyz")[0] == 200
    finally:
        assert process.terminate() == 0


def _get(process: RelayProcess, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        url = f"http://127.0.0.1:{process.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
