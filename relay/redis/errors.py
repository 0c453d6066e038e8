"""The redis-py errors the rest of the relay may catch, under one import.

Code outside ``relay.redis`` imports these from here, never from redis-py, so the boundary
test can forbid every ``redis`` import outside this package.
"""

from __future__ import annotations

from redis.exceptions import (
    AuthenticationError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Redis unreachable, whichever client: the cluster client reports a cluster it cannot reach
# at all with an exception outside RedisError.
REDIS_DOWN = (RedisError, RedisClusterException)

__all__ = [
    "REDIS_DOWN",
    "AuthenticationError",
    "NoScriptError",
    "ReadOnlyError",
    "RedisClusterException",
    "RedisConnectionError",
    "RedisError",
    "RedisTimeoutError",
    "ResponseError",
]
