from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

import pytest
from redis.asyncio import Redis, RedisCluster

from relay.dev.embedded import EmbeddedRedis, start_embedded_redis
from relay.streams.writer import Entry, FanoutWriter
from relay.worker import Event, RetryPolicy, Worker
from tests.support import entry_schemas
from tests.support.waiting import wait_for

STREAM = "anyformat:events"
GROUP = "billing"


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    server = start_embedded_redis()
    entry_schemas.watch(server.url)
    yield server
    entry_schemas.unwatch(server.url)
    server.stop()


@pytest.fixture(params=["redis-server", "embedded", "cluster"])
async def backend_client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Redis]:
    """A client on each backend in turn: every worker case runs on a real redis-server, on
    `relay dev`'s embedded server and on a real Redis Cluster (flushed first)."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("cluster")
        client: Redis = cast(Redis, RedisCluster.from_url(cluster.url, socket_timeout=5))
    else:
        url = redis_url
        if request.param == "embedded":
            url = request.getfixturevalue("embedded_redis").url
        client = Redis.from_url(url, socket_timeout=5)
    await client.flushall()
    yield client
    await client.aclose()


async def publish(backend_client: Redis, count: int = 1, stream: str = STREAM) -> list[str]:
    """Entries exactly as the relay writes them."""
    writer = FanoutWriter(backend_client, dedupe_ttl=600)
    ids = []
    for n in range(count):
        payload = json.dumps(
            {"event": "extraction.completed", "data": {"extraction_id": f"ex-{n}"}}
        ).encode()
        entry = Entry(
            id=f"msg_{n}_{time.monotonic_ns()}",
            event="extraction.completed",
            payload=payload,
            received_at=time.time_ns() // 1_000_000,
            extraction_id=f"ex-{n}",
            workflow_id="wf",
            # Calls reuse ex-0, ex-1…: the id alone makes each a new entry (marks are
            # specified in tests/streams).
            content_mark=None,
        )
        [entry_id] = await writer.write(entry, [stream])
        assert entry_id is not None
        ids.append(entry_id)
    return ids


class Running:
    """A worker running in a task of this event loop."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.task = asyncio.create_task(worker.run())

    async def stop(self) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 30)


StartWorker = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_worker(backend_client: Redis) -> AsyncIterator[StartWorker]:
    running: list[Running] = []

    async def start(handler: Callable[[Event], Awaitable[Any]], **options: Any) -> Running:
        options.setdefault("stream", STREAM)
        options.setdefault("group", GROUP)
        options.setdefault("retry", RetryPolicy(max_attempts=5, backoff_base=0.05, backoff_max=0.2))
        options.setdefault("block", 0.2)
        options.setdefault("start_id", "0")
        worker = Running(Worker(backend_client, handler=handler, **options))
        running.append(worker)
        # Started: the group exists (or the worker died, which the test will show).
        await wait_for(
            lambda: worker.worker.phase != "starting" or worker.task.done(),
            what="the worker started",
        )
        return worker

    yield start
    for worker in running:
        if not worker.task.done():
            await worker.stop()
