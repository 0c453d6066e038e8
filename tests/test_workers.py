"""RELAY_WORKERS=2: two serving processes share the ports; metrics add up; clean stop."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET, event_body, sign

pytestmark = pytest.mark.process


async def test_two_processes_serve_share_metrics_and_stop_cleanly(own_redis: RedisServer) -> None:
    relay = RelayProcess(
        {
            "RELAY_REDIS_URL": own_redis.url,
            "RELAY_REGISTER": "false",
            "RELAY_WEBHOOK_SECRET": SECRET,
            "RELAY_WORKERS": "2",
        }
    )
    relay.start()
    try:
        for _ in range(40):
            # A new connection each time: the kernel spreads them over both processes.
            async with aiohttp.ClientSession() as http:
                body = event_body()
                url = f"{relay.url}/webhooks/anyformat"
                async with http.post(url, data=body, headers=sign(body)) as response:
                    assert response.status == 200
        await asyncio.sleep(0.2)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{relay.admin_port}/metrics") as r,
        ):
            metrics = await r.text()
        received = re.search(r"^relay_deliveries_received_total (\S+)$", metrics, re.M)
        assert received is not None and float(received[1]) == 40.0, metrics[:2000]
        assert own_redis.client().xlen("anyformat:events") == 40
        started = [
            json.loads(line) for line in relay.output().splitlines() if "relay_started" in line
        ]
        assert len({line["pid"] for line in started}) == 2
    finally:
        code = relay.terminate()
    assert code == 0
    output = relay.output()
    assert output.count('"msg":"relay_stopped"') == 2
    assert '"msg":"supervisor_stopped"' in output
