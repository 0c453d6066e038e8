"""The browser tests' real parts, one set per test module: a redis-server and a
``relay run`` process with the console on (the admin token set, registration off)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.conftest import TOKEN
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def relay(redis_server: RedisServer) -> Iterator[RelayProcess]:
    process = RelayProcess(
        {
            "RELAY_REDIS_URL": redis_server.url,
            "RELAY_REGISTER": "false",
            "RELAY_WEBHOOK_SECRET": SECRET,
            "RELAY_ADMIN_TOKEN": TOKEN,
        }
    )
    process.start()
    yield process
    process.kill()
