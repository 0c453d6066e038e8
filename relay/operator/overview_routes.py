"""The routes of the read-only answers (:mod:`relay.operator.overview`) on the admin app.

Redis being away is ``503 {"error": "redis_unavailable"}``, as on the delivery path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from relay.operator.overview import (
    PausedReader,
    reconciliation_overview,
    registration_overview,
    streams_overview,
)
from relay.operator.security import error
from relay.redis_client import REDIS_DOWN
from relay.registration.keeper import RegistrationStatus
from relay.settings import Settings


def overview_routes(
    redis: Redis,
    settings: Settings,
    streams: Callable[[], Sequence[str]],
    registration: RegistrationStatus,
    *,
    paused: PausedReader | None = None,
) -> Callable[[web.Application], None]:
    """What adds ``GET /api/streams``, ``/api/registration`` and ``/api/reconciliation``."""

    def answer(
        document: Callable[[], Awaitable[dict[str, Any]]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                return web.json_response(await document())
            except REDIS_DOWN:
                return error(503, "redis_unavailable")

        return handle

    def add(app: web.Application) -> None:
        app.router.add_get(
            "/api/streams", answer(lambda: streams_overview(redis, streams(), paused=paused))
        )
        app.router.add_get(
            "/api/registration",
            answer(lambda: registration_overview(redis, settings, registration)),
        )
        app.router.add_get(
            "/api/reconciliation",
            answer(lambda: reconciliation_overview(redis, settings, now=time.time())),
        )

    return add
