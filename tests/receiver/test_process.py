"""The ``relay run`` process itself: start-up, logs, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET, event_body, sign
from tests.support.waiting import wait_for

pytestmark = pytest.mark.process


@pytest.fixture
def relay_process(own_redis: RedisServer) -> Iterator[RelayProcess]:
    process = RelayProcess(
        {
            "RELAY_REDIS_URL": own_redis.url,
            "RELAY_REGISTER": "false",
            "RELAY_WEBHOOK_SECRET": SECRET,
        }
    )
    yield process.start()
    process.kill()


async def test_serves_logs_one_line_per_request_and_never_the_secret(
    relay_process: RelayProcess, own_redis: RedisServer
) -> None:
    body = event_body(extraction_id="ex-9")
    async with aiohttp.ClientSession() as http:
        for headers in (sign(body, msg_id="msg_9"), sign(body, msg_id="msg_9"), {}):
            async with http.post(
                f"{relay_process.url}/webhooks/anyformat", data=body, headers=headers
            ) as response:
                await response.read()
    assert relay_process.terminate() == 0

    output = relay_process.output()
    assert SECRET not in output
    assert SECRET.removeprefix("whsec_") not in output
    lines = [json.loads(line) for line in output.splitlines()]
    deliveries = [line for line in lines if line["msg"] == "delivery"]
    assert [(d["status"], d["outcome"]) for d in deliveries] == [
        (200, "accepted"),
        (200, "duplicate"),
        (401, "rejected"),
    ]
    first = deliveries[0]
    assert (first["id"], first["event"]) == ("msg_9", "extraction.completed")
    assert isinstance(first["latency_ms"], float)
    assert own_redis.client().xlen("anyformat:events") == 1


async def test_sigterm_finishes_requests_held_by_a_paused_redis_then_exits_0(
    relay_process: RelayProcess, own_redis: RedisServer
) -> None:
    bodies = [event_body() for _ in range(5)]
    paused = threading.Event()

    def pause() -> None:
        own_redis.client().execute_command("CLIENT", "PAUSE", "1500", "ALL")
        paused.set()

    async with aiohttp.ClientSession() as http:

        async def deliver(body: bytes) -> int:
            async with http.post(
                f"{relay_process.url}/webhooks/anyformat", data=body, headers=sign(body)
            ) as response:
                return response.status

        pause()
        in_flight = [asyncio.create_task(deliver(body)) for body in bodies]
        metrics = f"http://127.0.0.1:{relay_process.admin_port}/metrics"

        async def all_waiting_on_redis() -> bool:
            async with http.get(metrics) as response:
                return "relay_deliveries_in_flight 5.0" in await response.text()

        await wait_for(all_waiting_on_redis, what="the five requests waiting on Redis")
        assert not any(task.done() for task in in_flight)
        exit_code = await asyncio.to_thread(relay_process.terminate)
        statuses = await asyncio.gather(*in_flight)

    assert paused.is_set()
    assert statuses == [200] * 5
    assert exit_code == 0
    assert own_redis.client().xlen("anyformat:events") == 5
    assert "relay_stopped" in relay_process.output()


def test_a_bad_setting_exits_non_zero_with_one_line_and_no_traceback() -> None:
    process = RelayProcess({"RELAY_PORT": "eighty", "RELAY_REGISTER": "false"})
    process.start(wait_ready=False)
    assert process.process is not None
    assert process.process.wait(timeout=15) == 2
    output = process.output()
    assert "Traceback" not in output
    assert output.strip().splitlines() == [
        "relay: configuration error: RELAY_PORT: Input should be a valid integer, "
        "unable to parse string as an integer (got 'eighty')"
    ]
