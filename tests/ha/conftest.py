from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_sentinel import RedisSentinelSet

SENTINEL_PASSWORD = "sentinel-pass-5f1c"


@pytest.fixture
def sentinels() -> Iterator[RedisSentinelSet]:
    """A private master + replica + three sentinels (the tests kill masters)."""
    deployment = RedisSentinelSet(sentinel_password=SENTINEL_PASSWORD).start()
    yield deployment
    deployment.close()
