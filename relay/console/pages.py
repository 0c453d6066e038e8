"""The console's routes: login and logout, the overview, the static assets.

Every page is behind :mod:`relay.operator.security` (session cookie, CSRF on each POST);
this module only renders. Forms post to the console and are answered with a redirect
(post/redirect/get), so a reload never repeats an action.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.console.rendering import render
from relay.operator.overview import Overview
from relay.operator.security import LOGIN_PATH, SECURITY, session_of
from relay.redis.errors import REDIS_DOWN

STATIC = Path(str(files("relay.console").joinpath("static")))
REFRESH_SECONDS = 5


# Route names of the pages other modules add: linked only where they exist.
EVENTS_PAGE = "console-events"
DEAD_LETTERS_PAGE = "console-dead-letters"
PAUSE_FORMS = "console-pause"


def page(template: str, request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    session = session_of(request)
    text = render(
        template,
        csrf=session.csrf if session else None,
        events_page=EVENTS_PAGE in request.app.router,
        dead_letters_page=DEAD_LETTERS_PAGE in request.app.router,
        pause_forms=PAUSE_FORMS in request.app.router,
        **context,
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def console_routes(overview: Overview) -> Callable[[web.Application], None]:
    """What adds the console's pages to the admin app (behind the guard)."""

    async def show_login(request: web.Request) -> web.StreamResponse:
        security = request.app[SECURITY]
        if security.sessions.read(request.cookies.get("relay_session")) is not None:
            raise web.HTTPSeeOther("/console/")
        return page("login.html", request, failed=False)

    async def log_in(request: web.Request) -> web.StreamResponse:
        security = request.app[SECURITY]
        if not await security.login_accepted(request):
            return page("login.html", request, status=401, failed=True)
        answer = web.HTTPSeeOther("/console/")
        security.login_cookie(answer, request)
        raise answer

    async def log_out(request: web.Request) -> web.StreamResponse:
        answer = web.HTTPSeeOther(LOGIN_PATH)
        request.app[SECURITY].logout_cookie(answer)
        raise answer

    async def to_overview(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/console/")

    async def show_overview(request: web.Request) -> web.Response:
        try:
            streams = (await overview.streams())["streams"]
            registration = await overview.registration()
            reconciliation = await overview.reconciliation()
        except REDIS_DOWN:
            return page(
                "overview.html",
                request,
                status=503,
                redis_down=True,
                streams=[],
                registration=None,
                reconciliation=None,
                refresh=REFRESH_SECONDS,
            )
        return page(
            "overview.html",
            request,
            redis_down=False,
            streams=streams,
            registration=registration,
            reconciliation=reconciliation,
            refresh=REFRESH_SECONDS,
        )

    def add(app: web.Application) -> None:
        app.router.add_get("/console", to_overview)
        app.router.add_get(LOGIN_PATH, show_login)
        app.router.add_post(LOGIN_PATH, log_in)
        app.router.add_post("/console/logout", log_out)
        app.router.add_get("/console/", show_overview)
        app.router.add_static("/console/static/", STATIC)

    return add
