"""relay.tracing's boundary: when tracing is on, and that off costs nothing of OpenTelemetry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relay.tracing import why_off
from tests.support.redis_server import RedisServer

ROOT = str(Path(__file__).resolve().parents[2])
ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({}, "no_endpoint"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, "no_endpoint"),
        (ENDPOINT, None),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, None),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, "OTEL_SDK_DISABLED"),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, "OTEL_SDK_DISABLED"),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, None),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, "OTEL_TRACES_EXPORTER=none"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, None),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "protocol_unsupported"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
          "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, None),
    ],
)  # fmt: skip
def test_on_only_with_an_endpoint_and_not_disabled(env: dict[str, str], reason: str | None) -> None:
    found = why_off(env)
    assert (found if found is None else found.split(":")[0]) == reason


# redis-py 8 imports opentelemetry's metrics SDK itself when it is installed (its own
# observability): what it imports is the baseline; the relay must add nothing to it.
OFF_SCRIPT = """
import asyncio, sys
import redis, redis.asyncio, redis.asyncio.cluster
def otel():
    return sorted(n for n in sys.modules if n.startswith(("opentelemetry", "relay.tracing.otel")))
baseline = otel()
import aiohttp
from redis.asyncio import Redis
from relay.receiver.app import RelayServer
from relay.worker import Worker
from tests.conftest import make_settings
from tests.support.signing import event_body, sign

async def main(url):
    server = RelayServer(make_settings(url))
    await server.start()
    body = event_body()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{server.public_port}/webhooks/anyformat",
                             data=body, headers=sign(body)) as response:
            assert response.status == 200, response.status
    handled = asyncio.Event()
    async def handler(event):
        handled.set()
    redis = Redis.from_url(url)
    worker = Worker(redis, stream="anyformat:events", group="g", handler=handler,
                    start_id="0")
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(handled.wait(), 20)
    worker.stop()
    await task
    await server.stop()
    await redis.aclose()
    print(baseline)
    print(otel())

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("env", [{}, {**ENDPOINT, "OTEL_SDK_DISABLED": "true"}])
def test_off_a_delivery_and_its_handling_import_nothing_of_opentelemetry(
    own_redis: RedisServer, env: dict[str, str]
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RELAY_"))}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OFF_SCRIPT), own_redis.url],
        env={**clean, **env, "PYTHONPATH": ROOT},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    baseline, after = done.stdout.strip().splitlines()[-2:]
    assert after == baseline
    assert "relay.tracing.otel" not in after
    assert own_redis.client().xlen("anyformat:events") == 1  # the delivery did go through
