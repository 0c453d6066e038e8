"""RELAY_WORKERS=2: two serving processes share the ports; metrics add up; clean stop."""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET, event_body, sign
from tests.support.waiting import wait_for

pytestmark = pytest.mark.process


def started_pids(relay: RelayProcess) -> set[str]:
    """Pids of the serving processes that logged ``relay_started`` (a line may be half
    written while we read, so no JSON parsing here)."""
    lines = [line for line in relay.output().splitlines() if '"msg":"relay_started"' in line]
    return {match[1] for line in lines if (match := re.search(r'"pid":(\d+)', line))}


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
        # /readyz answers once one process listens; wait until both do, or all 40 go to one.
        await wait_for(relay.alive(lambda: len(started_pids(relay)) == 2),
                       what="both processes started", context=relay.tail)  # fmt: skip
        for _ in range(40):
            # A new connection each time: the kernel spreads them over both processes.
            async with aiohttp.ClientSession() as http:
                body = event_body()
                url = f"{relay.url}/webhooks/anyformat"
                async with http.post(url, data=body, headers=sign(body)) as response:
                    assert response.status == 200

        # Both processes count into shared files: wait until the sum says 40, no guessing.
        async def all_counted() -> bool:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{relay.admin_port}/metrics") as r,
            ):
                metrics = await r.text()
            found = re.search(r"^relay_deliveries_received_total (\S+)$", metrics, re.M)
            return found is not None and float(found[1]) == 40.0

        await wait_for(all_counted, what="40 received, summed over both processes")
        assert own_redis.client().xlen("anyformat:events") == 40
    finally:
        code = relay.terminate()
    assert code == 0
    output = relay.output()
    assert output.count('"msg":"relay_stopped"') == 2
    assert '"msg":"supervisor_stopped"' in output
