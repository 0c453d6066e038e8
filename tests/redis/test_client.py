"""The one client factory's settings (Sentinel, replica acknowledgement) and the server
version check made once at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from relay.redis.client import RedisTooOld, SentinelMaster, check_version, redis_from_settings
from relay.worker.process import _run_on_a_fit_redis
from relay.worker.runtime import Worker
from tests.support.redis_server import RedisServer, free_port
from tests.support.settings import problems, settings


def test_the_contract_defaults() -> None:
    s = settings()
    assert (s.redis_sentinels, s.redis_sentinel_master, s.redis_sentinel_password) == (
        [], "mymaster", None,
    )  # fmt: skip
    assert (s.redis_wait_replicas, s.redis_wait_timeout) == (0, 1000)


def test_sentinels_are_comma_separated_host_ports() -> None:
    s = settings(RELAY_REDIS_SENTINELS="s1:26379, 10.0.0.2:26380,[::1]:26381")
    assert s.redis_sentinels == ["s1:26379", "10.0.0.2:26380", "[::1]:26381"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"RELAY_REDIS_SENTINELS": "s1"}, "RELAY_REDIS_SENTINELS: 's1' is not host:port"),
        ({"RELAY_REDIS_SENTINELS": "s1:0"}, "RELAY_REDIS_SENTINELS: 's1:0' is not host:port"),
        ({"RELAY_REDIS_SENTINELS": "s1:26379", "RELAY_REDIS_CLUSTER": "true"},
         "RELAY_REDIS_SENTINELS and RELAY_REDIS_CLUSTER exclude each other"),
        ({"RELAY_REDIS_SENTINELS": "s1:26379", "RELAY_REDIS_URL": "unix:///r.sock"},
         "RELAY_REDIS_SENTINELS needs a redis:// or rediss:// RELAY_REDIS_URL"),
        ({"RELAY_REDIS_WAIT_REPLICAS": "-1"}, "RELAY_REDIS_WAIT_REPLICAS: Input should be"),
        ({"RELAY_REDIS_WAIT_TIMEOUT": "0"}, "RELAY_REDIS_WAIT_TIMEOUT: Input should be"),
    ],
)  # fmt: skip
def test_bad_values_are_named(values: dict[str, str], expected: str) -> None:
    assert any(line.startswith(expected) for line in problems(**values)), problems(**values)


def test_the_sentinel_password_never_appears_in_an_error() -> None:
    lines = problems(RELAY_REDIS_SENTINEL_PASSWORD="hunter2-sentinel", RELAY_PORT="x")
    assert "hunter2" not in " ".join(lines)
    assert repr(settings(RELAY_REDIS_SENTINEL_PASSWORD="hunter2-sentinel")).count("hunter2") == 0


async def test_with_sentinels_the_url_gives_credentials_and_database_not_the_host() -> None:
    client = redis_from_settings(settings(
        RELAY_REDIS_URL="rediss://app:pw@ignored.invalid:1/3",
        RELAY_REDIS_SENTINELS="127.0.0.1:26379", RELAY_REDIS_SENTINEL_MASTER="cache",
        RELAY_REDIS_SENTINEL_PASSWORD="spw",
    ))  # fmt: skip
    try:
        assert isinstance(client, SentinelMaster)
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("app", "pw", 3)
        assert "host" not in kwargs and pool.connection_class.__name__.endswith("SSLConnection")
        assert pool.service_name == "cache"  # type: ignore[attr-defined]
        [sentinel] = client.sentinels.sentinels
        sentinel_kwargs = sentinel.connection_pool.connection_kwargs
        assert (sentinel_kwargs["host"], sentinel_kwargs["password"]) == ("127.0.0.1", "spw")
    finally:
        await client.aclose()


async def test_a_real_server_passes_the_version_check(own_redis: RedisServer) -> None:
    client = Redis.from_url(own_redis.url)
    try:
        version = await check_version(client)
    finally:
        await client.aclose()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (7, 0)


class ReportsVersion(Redis):
    """A client whose server says it is ``version`` (no Redis 6 is installed to ask); every
    other command finds nothing listening."""

    def __init__(self, version: str) -> None:
        super().__init__(port=free_port(), socket_connect_timeout=1)
        self.version = version

    async def info(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {"redis_version": self.version}


@pytest.mark.parametrize("version", ["6.2.14", "5.0.7"])
async def test_an_older_server_is_refused_with_a_clear_message(version: str) -> None:
    with pytest.raises(RedisTooOld, match=rf"Redis {version} is too old: .* 7\.0 or newer"):
        await check_version(ReportsVersion(version))


@pytest.mark.parametrize("version", ["7.0.0", "7.2.4", "8.2.1", "10.0.0"])
async def test_seven_and_newer_pass(version: str) -> None:
    assert await check_version(ReportsVersion(version)) == version


async def test_a_worker_on_an_older_server_stops_with_the_message() -> None:
    redis = ReportsVersion("6.2.14")

    async def handler(event: object) -> None:
        raise AssertionError("never called")

    worker = Worker(redis, stream="s", group="g", handler=handler)
    try:
        with pytest.raises(SystemExit, match=r"relay: Redis 6\.2\.14 is too old"):
            await _run_on_a_fit_redis(worker, redis)
        assert worker.phase == "stopped"
    finally:
        await redis.aclose()
