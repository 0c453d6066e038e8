"""The master SIGKILLed mid-run under a retrying sender, with and without WAIT.

With ``RELAY_REDIS_WAIT_REPLICAS=1`` nothing acknowledged is lost when the replica is
promoted; without it, whatever the replica had not received yet is gone (printed, not
asserted: it depends on timing)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.chaos.sender import SendReport, send_all
from tests.ha.conftest import SENTINEL_PASSWORD
from tests.support.process import RelayProcess
from tests.support.redis_sentinel import RedisSentinelSet
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET

pytestmark = [pytest.mark.chaos, pytest.mark.process]
Say = Callable[[str], None]
STREAMS = ("anyformat:events", "anyformat:events:extraction.completed")
DELIVERIES = 2000
RATE = 200


def relay_for(deployment: RedisSentinelSet, wait_replicas: int) -> RelayProcess:
    return RelayProcess(
        {
            "RELAY_REDIS_URL": "redis://unused.invalid:6379/0",
            "RELAY_REDIS_SENTINELS": deployment.addresses,
            "RELAY_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "RELAY_REDIS_WAIT_REPLICAS": str(wait_replicas),
            "RELAY_REDIS_WAIT_TIMEOUT": "1000",
            "RELAY_REDIS_TIMEOUT": "2",
            "RELAY_REGISTER": "false",
            "RELAY_WEBHOOK_SECRET": SECRET,
            "RELAY_LOG_LEVEL": "warning",
        }
    )


async def run_with_master_killed(
    deployment: RedisSentinelSet, relay: RelayProcess
) -> tuple[SendReport, RedisServer, dict[str, float]]:
    """Send DELIVERIES at RATE; a third of the way in, SIGKILL the master, wait for the
    promotion, then restart the killed server as the new master's replica. Returns the
    master at the end (on a loaded machine the sentinels may fail over once more)."""
    stop = threading.Event()
    figures: dict[str, float] = {}
    survivor: list[RedisServer] = []

    errors: list[Exception] = []

    def fault() -> None:
        if stop.wait(DELIVERIES / RATE / 3):
            return
        started = time.monotonic()
        try:
            killed, promoted = deployment.kill_master()
            figures["promoted_after_s"] = time.monotonic() - started
            survivor.append(promoted)
            deployment.rejoin(killed, promoted)
            figures["replica_back_after_s"] = time.monotonic() - started
        except Exception as exc:  # the test fails on it below, not silently in the thread
            errors.append(exc)

    thread = threading.Thread(target=fault, daemon=True)
    thread.start()
    try:
        report = await send_all(
            f"{relay.url}/webhooks/anyformat", DELIVERIES, rate=RATE, deadline_s=120
        )
    finally:
        stop.set()
        thread.join(90)
    assert survivor and not errors, (errors, "the master was never killed")
    figures["failovers"] = deployment.failovers()
    return report, deployment.settled_master(), figures


def stream_ids(server: RedisServer) -> dict[str, Counter[str]]:
    client = server.client()
    return {
        stream: Counter(fields[b"id"].decode() for _, fields in client.xrange(stream))
        for stream in STREAMS
    }


async def test_with_wait_one_nothing_acknowledged_is_lost(
    sentinels: RedisSentinelSet, say: Say
) -> None:
    relay = relay_for(sentinels, wait_replicas=1).start()
    try:
        report, master, figures = await run_with_master_killed(sentinels, relay)
    finally:
        relay.kill()
    found = stream_ids(master)
    lost = {stream: len(report.acknowledged - set(ids)) for stream, ids in found.items()}
    doubled = {stream: sum(n - 1 for n in ids.values()) for stream, ids in found.items()}
    say(f"{report.summary()} lost={lost} doubled={doubled} {_rounded(figures)}")
    assert len(report.acknowledged) == DELIVERIES, report.summary()
    assert set(lost.values()) == {0} and set(doubled.values()) == {0}
    assert "Traceback" not in relay.output()


async def test_without_wait_the_loss_is_printed(sentinels: RedisSentinelSet, say: Say) -> None:
    relay = relay_for(sentinels, wait_replicas=0).start()
    try:
        report, master, figures = await run_with_master_killed(sentinels, relay)
    finally:
        relay.kill()
    found = stream_ids(master)
    lost = {stream: len(report.acknowledged - set(ids)) for stream, ids in found.items()}
    doubled = {stream: sum(n - 1 for n in ids.values()) for stream, ids in found.items()}
    say(f"WAIT off: {report.summary()} lost={lost} doubled={doubled} {_rounded(figures)}")
    assert len(report.acknowledged) == DELIVERIES, report.summary()
    assert set(doubled.values()) == {0}  # dedupe marks travel with their entries


def _rounded(figures: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.3g}" for name, value in figures.items())
