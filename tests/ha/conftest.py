from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.redis_sentinel import RedisSentinelSet

SENTINEL_PASSWORD = "sentinel-pass-5f1c"


@pytest.fixture
def sentinels() -> Iterator[RedisSentinelSet]:
    """A private master + replica + three sentinels (the tests kill masters)."""
    deployment = RedisSentinelSet(sentinel_password=SENTINEL_PASSWORD).start()
    yield deployment
    deployment.close()


@pytest.fixture
def say(
    capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> Callable[[str], None]:
    """Print past the capture: the figures of every failover belong in CI's output."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n[{request.node.name}] {line}")

    return emit
