"""RELAY_WORKERS=2: two serving processes share the ports; metrics add up; clean stop."""

from __future__ import annotations

import asyncio
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
        # Ready means one process answers; wait until both have started serving.
        started = relay.wait_for_log("relay_started", count=2)
        assert len({line["pid"] for line in started}) == 2
        for _ in range(40):
            # A new connection each time: the kernel spreads them over both processes.
            async with aiohttp.ClientSession() as http:
                body = event_body()
                url = f"{relay.url}/webhooks/anyformat"
                async with http.post(url, data=body, headers=sign(body)) as response:
                    assert response.status == 200
        # Both processes' counts, summed on one scrape (polled: a scrape may land
        # between a process's answer and its metrics file write).
        deadline = asyncio.get_running_loop().time() + 10
        received: float | None = None
        while received != 40.0 and asyncio.get_running_loop().time() < deadline:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{relay.admin_port}/metrics") as r,
            ):
                metrics = await r.text()
            match = re.search(r"^relay_deliveries_received_total (\S+)$", metrics, re.M)
            received = float(match[1]) if match else None
            if received != 40.0:
                await asyncio.sleep(0.05)  # poll interval, not synchronisation
        assert received == 40.0, metrics[:2000]
        assert own_redis.client().xlen("anyformat:events") == 40
    finally:
        code = relay.terminate()
    assert code == 0
    output = relay.output()
    assert output.count('"msg":"relay_stopped"') == 2
    assert '"msg":"supervisor_stopped"' in output
