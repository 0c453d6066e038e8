from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

import aiohttp
import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio import RedisCluster as AsyncRedisCluster

from relay.receiver.app import RelayServer
from relay.settings import Settings
from tests.support import entry_schemas
from tests.support.fake_anyformat import FakeAnyFormat
from tests.support.process import RelayProcess
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET


@pytest.fixture(autouse=True)
def _entries_match_the_schemas(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, every entry on every Redis the suite runs validates against the
    published schemas (tests/support/entry_schemas.py)."""
    yield
    problems = entry_schemas.check_all()
    if problems:
        entry_schemas.flush_all()
    if problems and request.node.get_closest_marker("foreign_entries") is None:
        shown = "\n".join(problems[:20])
        pytest.fail(f"{len(problems)} entries do not match relay/schemas:\n{shown}")


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One real redis-server for the tests that only need a clean database."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(shared_redis: RedisServer) -> str:
    shared_redis.client().flushall()
    return shared_redis.url


@pytest.fixture
def redis_sync(shared_redis: RedisServer, redis_url: str) -> redis.Redis:
    return shared_redis.client()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    """An asyncio client on the shared, freshly flushed database (replies as bytes, as the
    relay's own clients read them)."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def text_client(redis_url: str) -> AsyncIterator[Redis]:
    """:func:`client` with replies decoded to ``str``."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real three-master cluster (one replica each), shared by the cluster tests."""
    cluster = RedisCluster().start()
    yield cluster
    cluster.close()


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The shared cluster, healthy (``cluster_state:ok``; an earlier test may have failed
    a master over) and flushed."""
    redis_cluster.wait_ok()
    redis_cluster.client().flushall()
    return redis_cluster


@pytest.fixture
def replicated_cluster(cluster: RedisCluster) -> RedisCluster:
    """:func:`cluster` once every master's replicas have synced (``WAIT`` answers)."""
    cluster.wait_replicated()
    return cluster


@pytest.fixture
async def cluster_client(cluster: RedisCluster) -> AsyncIterator[Redis]:
    """An asyncio cluster client on the flushed cluster (replies as bytes)."""
    client = cast(Redis, AsyncRedisCluster.from_url(cluster.url, socket_timeout=5))
    yield client
    await client.aclose()


@pytest.fixture
async def cluster_text_client(cluster: RedisCluster) -> AsyncIterator[Redis]:
    """:func:`cluster_client` with replies decoded to ``str``."""
    client = cast(Redis, AsyncRedisCluster.from_url(cluster.url, decode_responses=True))
    yield client
    await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server the test may stop, restart or pause."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
async def own_client(own_redis: RedisServer) -> AsyncIterator[Redis]:
    """An asyncio client on :func:`own_redis` (a short timeout: the test stops it)."""
    client = Redis.from_url(own_redis.url, socket_timeout=2)
    yield client
    await client.aclose()


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "RELAY_REDIS_URL": redis_url,
        "RELAY_HOST": "127.0.0.1",
        "RELAY_PORT": 0,
        "RELAY_ADMIN_PORT": 0,
        "RELAY_REGISTER": False,
        "RELAY_WEBHOOK_SECRET": SECRET,
        "RELAY_REDIS_TIMEOUT": 2,
        "RELAY_SHUTDOWN_TIMEOUT": 10,
    }
    values.update(overrides)
    values = {key: value for key, value in values.items() if value is not None}
    return Settings(_env_file=None, **values)


StartRelay = Callable[..., Awaitable[RelayServer]]


@pytest.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    """Start relays exactly as ``relay run`` builds them, on free ports; stopped afterwards."""
    started: list[RelayServer] = []

    async def start(redis_url: str, **overrides: Any) -> RelayServer:
        server = RelayServer(make_settings(redis_url, **overrides))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        if not server.relay.draining:
            await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def fake_api() -> Iterator[FakeAnyFormat]:
    """The fake AnyFormat API, on a free port."""
    api = FakeAnyFormat().start()
    yield api
    api.close()


@pytest.fixture
def processes() -> Iterator[list[RelayProcess]]:
    """``relay run`` processes the test starts (appends here); killed afterwards."""
    started: list[RelayProcess] = []
    yield started
    for process in started:
        if process.process is not None and process.process.poll() is None:
            process.signal(signal.SIGCONT)  # a paused one must be able to die
        process.kill()


@pytest.fixture
def say(
    capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> Callable[[str], None]:
    """Print past the capture: figures (failovers, counts) belong in CI's output."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n[{request.node.name}] {line}")

    return emit
