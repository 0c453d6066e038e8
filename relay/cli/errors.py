"""What a command prints when it fails: one line a user can act on, never a traceback.

Click already handles usage errors; this turns everything else a user can cause or meet
(Redis unreachable, an id Redis refuses, a busy port, a missing file) into ``relay: …`` and
exit 1. ``RELAY_LOG_LEVEL=debug`` keeps the traceback, for bug reports.
"""

from __future__ import annotations

import errno
import re

_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")


def _masked(text: str) -> str:
    """``text`` with any URL's password replaced (a message may quote a URL)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def describe(exc: BaseException, redis_url: str | None) -> str:
    """The one line for ``exc``; ``redis_url``: the Redis the command was using, if any."""
    from relay.redis.errors import (
        AuthenticationError,
        RedisClusterException,
        RedisConnectionError,
        RedisError,
        RedisTimeoutError,
        ResponseError,
    )

    where = f" at {_masked(redis_url)}" if redis_url else ""
    message = _masked(str(exc)) or type(exc).__name__
    if isinstance(exc, AuthenticationError):
        return f"Redis{where} refused the credentials: {message}"
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, RedisClusterException)):
        hint = " (is it running? RELAY_REDIS_URL names it)" if redis_url else ""
        return f"cannot reach Redis{where}: {message}{hint}"
    if isinstance(exc, ResponseError):
        if "stream id" in message.lower():
            return f"not a stream id: {message} (ids look like 1711281750000-0)"
        return f"Redis{where} refused the command: {message}"
    if isinstance(exc, RedisError):
        return f"Redis{where}: {type(exc).__name__}: {message}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        hint = "another relay? set RELAY_PORT / RELAY_ADMIN_PORT"
        return f"a port is already in use: {message} ({hint})"
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename or message}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or message}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or message}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {message}"
