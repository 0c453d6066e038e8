"""The admin app of both programs (``relay run`` and ``relay worker``): ``/healthz``,
``/readyz`` and ``/metrics`` on a port never exposed to the internet, and (with
``RELAY_ADMIN_TOKEN``) the operator API and console behind their guard.

Each program says what alive, ready and its metrics mean; the routes, the runner and the
listener are built here once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from relay.operator.security import OperatorSecurity

# What /readyz answers: the status code and the JSON document.
Readiness = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]
# Adds operator routes (under /api/ or /console/) to the admin app.
OperatorRoutes = Callable[[web.Application], None]


def admin_app(
    *,
    health: dict[str, str],
    readiness: Readiness,
    metrics: Callable[[], bytes],
    server_header: str | None = None,
    security: OperatorSecurity | None = None,
    operator: Sequence[OperatorRoutes] = (),
) -> web.Application:
    """The three routes; ``server_header`` replaces aiohttp's ``Server`` (which names it).

    ``operator`` routes are added only with ``security`` (the token is set), and every one
    of them is then behind it: without a token there is no operator surface at all.
    """

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(health)

    async def readyz(request: web.Request) -> web.Response:
        status, document = await readiness()
        return web.json_response(document, status=status)

    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    if server_header is not None:

        async def no_software_named(request: web.Request, response: web.StreamResponse) -> None:
            response.headers["Server"] = server_header

        app.on_response_prepare.append(no_software_named)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", serve_metrics)
    if security is not None:
        security.install(app)
        for add_routes in operator:
            add_routes(app)
    return app


def admin_runner(app: web.Application) -> web.AppRunner:
    """The runner both programs use: their own signal handling, no access log."""
    return web.AppRunner(app, handle_signals=False, access_log=None)
