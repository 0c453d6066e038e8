"""`relay worker` processes under a backlog that fails: a bounded hold, heartbeats over
10,000 held entries, an exit 0 on SIGTERM, and the example worker with its lifespan."""

from __future__ import annotations

import asyncio
import signal
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from aiohttp import web

from tests.support.entry_schemas import relay_fields
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.process

ROOT = str(Path(__file__).resolve().parents[2])
STREAM, GROUP, CONSUMER = "anyformat:events", "billing", "w1"
FAILING = "tests.worker.handlers:failing"


def worker(server: RedisServer, handler: str, *extra: str, **env: str) -> RelayProcess:
    process = RelayProcess(
        {"RELAY_REDIS_URL": server.url, "RELAY_LOG_LEVEL": "warning", **env},
        "worker", "--stream", STREAM, "--group", GROUP, "--handler", handler,
        "--consumer", CONSUMER,
        cwd=ROOT,
    )  # fmt: skip
    process.args = (*process.args, "--metrics-port", str(process.admin_port), *extra)
    return process


def fill(client: redis.Redis, count: int, extraction: Callable[[int], str] = str) -> list[str]:
    with client.pipeline(transaction=False) as pipe:
        for n in range(count):
            pipe.xadd(STREAM, relay_fields(n, extraction_id=extraction(n)))
        return [entry_id.decode() for entry_id in pipe.execute()]


def held_by(client: redis.Redis, consumer: str = CONSUMER) -> int:
    try:
        summary = client.xpending(STREAM, GROUP)
    except redis.ResponseError:
        return 0
    return {c["name"].decode(): int(c["pending"]) for c in summary["consumers"]}.get(consumer, 0)


def admin_get(process: RelayProcess, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{process.admin_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_failing_backlog_is_held_up_to_the_cap_and_sigterm_exits_0(
    own_redis: RedisServer,
) -> None:
    client = own_redis.client()
    fill(client, 10_000)
    # Outage pausing off: this is about the cap. Retries wait 30-60 s, so held entries
    # pile up exactly as behind a dependency that fails fast.
    process = worker(own_redis, FAILING, "--outage-threshold", "0", "--backoff-base", "60",
                     "--backoff-max", "60", "--concurrency", "10")  # fmt: skip
    process.start(wait_ready=False)
    try:
        process.wait_for(
            lambda: held_by(client) == 100,
            what="100 held (the default cap: 10 x concurrency)",
            within=60,
        )
        [group] = client.xinfo_groups(STREAM)
        assert group["entries-read"] == 100  # the read loop waits at the cap
        _, metrics = admin_get(process, "/metrics")
        assert f'relay_worker_held{{group="{GROUP}",stream="{STREAM}"}} 100.0' in metrics
        assert admin_get(process, "/readyz")[0] == 200
    finally:
        code = process.terminate()
    assert code == 0
    assert held_by(client) == 100 and client.xlen(f"{STREAM}:dlq") == 0  # left for takeover


def test_10000_held_entries_are_heartbeated_and_sigterm_exits_0(own_redis: RedisServer) -> None:
    """Before: one keep-claimed call with every held id, past Lua's unpack limit (~8k):
    the heartbeat raised and the worker died."""
    client = own_redis.client()
    ids = fill(client, 10_000)
    process = worker(own_redis, FAILING, "--outage-threshold", "0", "--backoff-base", "60",
                     "--backoff-max", "60", "--concurrency", "50", "--max-held", "10000",
                     "--claim-idle", "3")  # fmt: skip
    process.start(wait_ready=False)

    def idle_ms(entry_id: str) -> int:
        [item] = client.xpending_range(STREAM, GROUP, min=entry_id, max=entry_id, count=1)
        return int(item["time_since_delivered"])

    try:
        process.wait_for(lambda: held_by(client) == 10_000, what="10,000 held", within=60)
        # A heartbeat over all 10,000 ids: the newest entry's idle time starts again.
        seen = [idle_ms(ids[-1])]
        process.wait_for(lambda: seen.append(idle_ms(ids[-1])) or seen[-1] < max(seen),
                         what="the newest entry heartbeated", within=60)  # fmt: skip
        assert admin_get(process, "/readyz")[0] == 200
    finally:
        code = process.terminate()
    assert code == 0
    assert "Traceback" not in process.output()
    assert held_by(client) == 10_000


async def test_the_example_worker_bills_through_its_lifespan_session(
    own_redis: RedisServer,
) -> None:
    """examples/billing_worker.py against a billing API on a loopback socket: billed,
    refused (Reject: dead-lettered at once), busy (Retry(after=…) honoured)."""
    requests: Counter[str] = Counter()
    keys: set[str] = set()

    async def usage(request: web.Request) -> web.Response:
        body = await request.json()
        extraction = body["extraction_id"]
        requests[extraction] += 1
        keys.add(request.headers["Idempotency-Key"])
        if extraction == "refused":
            return web.Response(status=422, text="unknown customer")
        if extraction == "busy" and requests[extraction] == 1:
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.json_response({"billed": extraction})

    app = web.Application()
    app.router.add_post("/usage", usage)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    client = own_redis.client()
    names = ["billed", "refused", "busy"]
    fill(client, 3, lambda n: names[n])
    process = worker(
        own_redis, "examples.billing_worker:handle",
        "--lifespan", "examples.billing_worker:lifespan", "--backoff-base", "60",
        BILLING_API_URL=f"http://127.0.0.1:{port}/usage",
    )  # fmt: skip
    process.start(wait_ready=False)

    async def settled() -> bool:
        return client.xlen(f"{STREAM}:dlq") == 1 and held_by(client) == 0

    try:
        await wait_for(process.alive(settled), what="one dead letter, nothing held", within=30,
                       context=process.tail)  # fmt: skip
        status, _ = await asyncio.to_thread(admin_get, process, "/readyz")
        assert status == 200
    finally:
        process.signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.process.wait, 30)  # type: ignore[union-attr]
        await runner.cleanup()
    assert code == 0
    assert requests == {"billed": 1, "refused": 1, "busy": 2}  # busy: Retry(after=0), not 60 s
    assert keys == {"msg_0", "msg_1", "msg_2"}
    [(_, dead)] = client.xrange(f"{STREAM}:dlq")
    assert dead[b"error"] == b"Reject: billing API refused refused: 422 unknown customer"
