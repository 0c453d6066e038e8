"""An admin app with the operator guard and a few stand-in routes, on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from relay.operator.security import (
    SECURITY,
    FailureLimiter,
    OperatorSecurity,
    Sessions,
    session_of,
)
from relay.receiver.admin import admin_app

TOKEN = "operator-token-4c1f9a2e7b"


class Clock:
    """A clock the test moves: the limiter's minute and the sessions' expiry at the edge."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def ready() -> tuple[int, dict[str, str]]:
    return 200, {"status": "ready"}


def stand_in_routes(app: web.Application) -> None:
    """What the operator routes look like to the guard: reads, an action, a page, a login."""
    security = app[SECURITY]

    async def read(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def act(request: web.Request) -> web.Response:
        form = await request.post()
        return web.json_response({"done": True, "note": str(form.get("note", ""))})

    async def page(request: web.Request) -> web.Response:
        session = session_of(request)
        csrf = session.csrf if session else ""
        return web.Response(text=f"<p data-csrf='{csrf}'>console</p>", content_type="text/html")

    async def login(request: web.Request) -> web.StreamResponse:
        if not await security.login_accepted(request):
            return web.Response(text="wrong token", status=401, content_type="text/html")
        answer = web.Response(status=303, headers={"Location": "/console/"})
        security.login_cookie(answer, request)
        return answer

    app.router.add_get("/api/things", read)
    app.router.add_post("/api/things/act", act)
    app.router.add_get("/console/", page)
    app.router.add_post("/console/act", act)
    app.router.add_post("/console/login", login)


@dataclass
class Guarded:
    url: str
    clock: Clock
    security: OperatorSecurity

    def bearer(self, token: str = TOKEN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def guarded_app(security: OperatorSecurity | None) -> web.Application:
    app = admin_app(
        health={"status": "ok"},
        readiness=ready,
        metrics=lambda: b"relay_up 1\n",
        security=security,
        operator=[stand_in_routes],
    )
    return app


@pytest.fixture
async def guarded() -> AsyncIterator[Guarded]:
    clock = Clock()
    security = OperatorSecurity(
        SecretStr(TOKEN),
        limiter=FailureLimiter(clock=clock),
        sessions=Sessions(SecretStr(TOKEN), clock=clock),
    )
    server = TestServer(guarded_app(security), host="127.0.0.1")
    await server.start_server()
    yield Guarded(str(server.make_url("")).rstrip("/"), clock, security)
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps no cookies unless the test hands them over itself."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session
