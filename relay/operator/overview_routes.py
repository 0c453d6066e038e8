"""The routes of the read-only answers (:mod:`relay.operator.overview`) on the admin app.

Redis being away is ``503 {"error": "redis_unavailable"}``, as on the delivery path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from relay.operator.overview import Overview
from relay.operator.security import error
from relay.redis.errors import REDIS_DOWN


def overview_routes(overview: Overview) -> Callable[[web.Application], None]:
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
        app.router.add_get("/api/streams", answer(overview.streams))
        app.router.add_get("/api/registration", answer(overview.registration))
        app.router.add_get("/api/reconciliation", answer(overview.reconciliation))

    return add
