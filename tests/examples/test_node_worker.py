"""examples/node-worker beside the Python runtime, on a real redis-server: a dead letter
either writes is replayed by `relay dlq replay` and handled once by the other; a Node worker
SIGKILLed mid-handler has its entry taken over by another."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from relay.redis.functions import load_library
from relay.streams.writer import FanoutWriter
from relay.worker import Event, Reject, RetryPolicy, Worker
from tests.support.entry_schemas import relay_entry
from tests.support.waiting import wait_for

pytestmark = pytest.mark.process
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node-worker"
STREAM = "anyformat:events"
FAST = {"MAX_ATTEMPTS": "2", "BACKOFF_BASE": "0.01", "BACKOFF_MAX": "0.02"}


class NodeWorker:
    """One `node worker.mjs`, its JSON log lines in a file."""

    def __init__(self, tmp: Path, redis_url: str, group: str, **env: str) -> None:
        node = shutil.which("node")
        if node is None or not (EXAMPLE / "node_modules" / "ioredis").is_dir():
            if os.environ.get("CI"):
                pytest.fail("CI must run the Node worker: node and `npm ci` in its folder")
            pytest.skip("node or examples/node-worker/node_modules missing (npm ci there)")
        self.log = tmp / f"node-{uuid.uuid4().hex[:8]}.log"
        environment = {**os.environ, "REDIS_URL": redis_url, "STREAM": STREAM,
                       "GROUP": group, "CONSUMER": self.log.stem, **env}  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([node, "worker.mjs"], cwd=EXAMPLE, env=environment,
                                            stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def lines(self, msg: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a stack trace, shown by the assertion that fails
            if record.get("msg") == msg:
                found.append(record)
        return found

    async def wait_for(self, msg: str, count: int = 1) -> list[dict[str, Any]]:
        def seen() -> bool:
            if self.process.poll() is not None and len(self.lines(msg)) < count:
                raise AssertionError(f"node exited: {self.log.read_text()}")
            return len(self.lines(msg)) >= count

        await wait_for(seen, what=f"node logs {count} {msg}", within=30)
        return self.lines(msg)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


@pytest.fixture
def nodes(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., NodeWorker]]:
    started: list[NodeWorker] = []

    def start(group: str, **env: str) -> NodeWorker:
        worker = NodeWorker(tmp_path, redis_url, group, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=5)
    await load_library(client)  # as every relay does at start-up
    yield client
    await client.aclose()


async def publish(client: Redis, extraction_id: str) -> str:
    entry = relay_entry(f"msg_{uuid.uuid4().hex}", extraction_id=extraction_id)
    [entry_id] = await FanoutWriter(client, dedupe_ttl=600).write(entry, [STREAM])
    assert entry_id is not None
    return entry_id


async def replay_all(redis_url: str) -> None:
    """`relay dlq replay STREAM --all`, the operator's command, as a process."""
    env = {**os.environ, "RELAY_REDIS_URL": redis_url, "PYTHONPATH": str(EXAMPLE.parents[1])}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "relay", "dlq", "replay", STREAM, "--all"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "1 replayed onto" in done.stdout, done.stderr


async def caught_up(client: Redis, group: str) -> bool:
    """The group has been given every entry of the stream and has none pending."""
    found = [g for g in await client.xinfo_groups(STREAM) if g["name"].decode() == group]
    if not found:
        return False  # not created yet
    [info] = found
    last = (await client.xrevrange(STREAM, count=1))[0][0]
    return bool(info["pending"] == 0 and info["last-delivered-id"] == last)


async def test_node_dead_letters_relay_replays_python_handles_it_once(
    redis: Redis, redis_url: str, nodes: Callable[..., NodeWorker]
) -> None:
    entry_id = await publish(redis, "ex-poison-1")
    node = nodes("node", FAIL_MATCHING="poison", **FAST)
    [dead] = await node.wait_for("dead_lettered")
    node.stop()
    [(dlq_id, letter)] = await redis.xrange(f"{STREAM}:dlq")
    assert dead["dlq_id"] == dlq_id.decode()
    assert (letter[b"group"], letter[b"attempts"]) == (b"node", b"2")
    assert letter[b"original_id"] == entry_id.encode()
    assert letter[b"error"] == b"Error: downstream refused ex-poison-1"
    assert (await redis.xpending(STREAM, "node"))["pending"] == 0  # acked with the call

    await redis.xgroup_create(STREAM, "python", id="$")  # only what comes from now on
    handled: list[Event] = []

    async def handler(event: Event) -> None:
        handled.append(event)

    await replay_all(redis_url)
    worker = Worker(redis, stream=STREAM, group="python", handler=handler, block=0.1)
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: caught_up(redis, "python"), what="python caught up")
    worker.stop()
    await task
    assert [e.extraction_id for e in handled] == ["ex-poison-1"]
    assert handled[0].fields["replayed_from"] == dlq_id
    assert handled[0].attempt == 1


async def test_python_dead_letters_relay_replays_node_handles_it_once(
    redis: Redis, redis_url: str, nodes: Callable[..., NodeWorker]
) -> None:
    await publish(redis, "ex-refused-1")

    async def handler(event: Event) -> None:
        raise Reject("customer deleted")

    worker = Worker(redis, stream=STREAM, group="python", handler=handler, block=0.1,
                    retry=RetryPolicy(max_attempts=2))  # fmt: skip
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: caught_up(redis, "python"), what="python caught up")
    worker.stop()
    await task
    [(dlq_id, letter)] = await redis.xrange(f"{STREAM}:dlq")
    assert letter[b"group"] == b"python"

    await redis.xgroup_create(STREAM, "node", id="$")
    await replay_all(redis_url)
    node = nodes("node", **FAST)
    [done] = await node.wait_for("handled")
    await wait_for(lambda: caught_up(redis, "node"), what="node caught up")
    node.stop()
    assert done["replayed_from"] == dlq_id.decode() and done["attempt"] == 1
    assert len(node.lines("handled")) == 1 and node.lines("dead_lettered") == []


async def test_a_node_worker_killed_mid_handler_has_its_entry_taken_over(
    redis: Redis, nodes: Callable[..., NodeWorker]
) -> None:
    entry_id = await publish(redis, "ex-slow-1")
    first = nodes("node", HANG_MATCHING="slow", CLAIM_IDLE="1")
    [hanging] = await first.wait_for("hanging")
    assert hanging["entry_id"] == entry_id
    first.stop(signal.SIGKILL)  # no ack, no cleanup: the entry stays pending, idle
    second = nodes("node", CLAIM_IDLE="1")
    [taken] = await second.wait_for("entry_taken_over")
    [done] = await second.wait_for("handled")
    assert taken["entry_id"] == done["entry_id"] == entry_id
    assert done["attempt"] == 2  # the delivery count: the killed attempt was the first
    await wait_for(lambda: caught_up(redis, "node"), what="node caught up")
    assert await redis.xlen(f"{STREAM}:dlq") == 0
