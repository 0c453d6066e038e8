"""The delivery guarantee under failures: every delivery acknowledged, and each event id
exactly once in every routed stream. Each scenario is bounded in count and time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.chaos.sender import SendReport, send_all
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET

pytestmark = [pytest.mark.chaos, pytest.mark.process]
Say = Callable[[str], None]
STREAMS = ("anyformat:events", "anyformat:events:extraction.completed")


def relay_for(server: RedisServer) -> RelayProcess:
    return RelayProcess(
        {
            "RELAY_REDIS_URL": server.url,
            "RELAY_REGISTER": "false",
            "RELAY_WEBHOOK_SECRET": SECRET,
            "RELAY_REDIS_TIMEOUT": "1",
            "RELAY_LOG_LEVEL": "warning",
        }
    )


def check_exactly_once(client: redis.Redis, report: SendReport, say: Say) -> str:
    counts = {}
    for stream in STREAMS:
        ids = Counter(fields[b"id"].decode() for _, fields in client.xrange(stream))
        duplicates = sum(n - 1 for n in ids.values() if n > 1)
        losses = len(report.acknowledged - set(ids))
        counts[stream] = (len(ids), duplicates, losses)
    summary = f"{report.summary()} streams={counts}"
    say(summary)
    assert len(report.acknowledged) == report.deliveries, summary
    for stream, (entries, duplicates, losses) in counts.items():
        assert (entries, duplicates, losses) == (report.deliveries, 0, 0), (stream, summary)
    return summary


async def run_with(fault, url: str, count: int = 400) -> SendReport:  # type: ignore[no-untyped-def]
    """Send ``count`` deliveries at 100/s while ``fault`` runs in a thread."""
    stop = threading.Event()
    worker = threading.Thread(target=fault, args=(stop,), daemon=True)
    worker.start()
    try:
        return await send_all(url, count, rate=100, deadline_s=60)
    finally:
        stop.set()
        worker.join(30)


async def test_relay_killed_with_sigkill_under_load(own_redis: RedisServer, say: Say) -> None:
    relay = relay_for(own_redis).start()

    def kill_and_restart(stop: threading.Event) -> None:
        for _ in range(3):
            if stop.wait(0.8):
                return
            relay.kill()
            time.sleep(0.2)  # the sender sees refused connections meanwhile
            relay.start()

    try:
        report = await run_with(kill_and_restart, f"{relay.url}/webhooks/anyformat")
    finally:
        relay.kill()
    assert report.resends > 0  # the kills were felt
    check_exactly_once(own_redis.client(), report, say)


async def test_redis_killed_and_restarted_with_aof(tmp_path: object, say: Say) -> None:
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always")
    server.start()
    relay = relay_for(server).start()

    def kill_redis(stop: threading.Event) -> None:
        for _ in range(2):
            if stop.wait(1.0):
                return
            server.kill()  # SIGKILL: only what was fsynced survives
            time.sleep(0.5)
            server.start()

    try:
        report = await run_with(kill_redis, f"{relay.url}/webhooks/anyformat")
        assert report.failures.get("503", 0) > 0  # the outage was answered 503
        check_exactly_once(server.client(), report, say)
        assert "Traceback" not in relay.output()
    finally:
        relay.kill()
        server.close()


async def test_redis_paused_connections_killed_and_slowed(say: Say) -> None:
    own_redis = RedisServer("--enable-debug-command", "local")
    own_redis.start()
    relay = relay_for(own_redis).start()

    slept = threading.Event()

    def misbehave(stop: threading.Event) -> None:
        admin = own_redis.client()
        for action in ("pause", "kill", "sleep", "pause", "kill"):
            if stop.wait(0.6):
                return
            if action == "pause":
                admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            elif action == "kill":
                admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            else:
                admin.execute_command("DEBUG", "SLEEP", "1.5")
                slept.set()

    try:
        report = await run_with(misbehave, f"{relay.url}/webhooks/anyformat")
        assert slept.is_set()  # every fault ran
        assert "500" not in report.failures, report.summary()
        check_exactly_once(own_redis.client(), report, say)
    finally:
        relay.kill()
        own_redis.close()


async def test_a_rolling_deploy_with_two_versions_of_the_routes_file(
    own_redis: RedisServer, tmp_path: Path, say: Say
) -> None:
    """Old and new relays side by side, the sender's re-sends landing on either."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text("routes:\n  - event: '*'\n    streams: [shared:events, old:only]\n")
    new.write_text("routes:\n  - event: '*'\n    streams: [shared:events, new:only]\n")
    relays = []
    for routes in (old, new):
        relay = relay_for(own_redis)
        relay.env["RELAY_ROUTES_FILE"] = str(routes)
        relays.append(relay.start())
    try:
        # Every delivery goes first to one version, and its re-send to the other.
        first = await send_all(f"{relays[0].url}/webhooks/anyformat", 200, rate=200,
                               deadline_s=30)  # fmt: skip
        again = await send_all(f"{relays[1].url}/webhooks/anyformat", 200, rate=200,
                               deadline_s=30)  # fmt: skip
    finally:
        for relay in relays:
            relay.kill()
    client = own_redis.client()
    shared = Counter(fields[b"id"].decode() for _, fields in client.xrange("shared:events"))
    say(
        f"{first.summary()} / {again.summary()} shared={len(shared)} "
        f"old={client.xlen('old:only')} new={client.xlen('new:only')}"
    )
    assert len(shared) == 200 and set(shared.values()) == {1}  # no loss, no double
    assert client.xlen("old:only") == 200 and client.xlen("new:only") == 200
