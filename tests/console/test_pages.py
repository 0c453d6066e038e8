"""The console's pages over a real socket, on a real relay and Redis: the login, the
overview's figures, text staying text. (The browser tests are in test_browser.py.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis
import yarl

from relay.console.rendering import count, duration, moment
from relay.operator.security import SESSION_COOKIE
from relay.receiver.app import RelayServer
from tests.conftest import StartRelay
from tests.operator.conftest import TOKEN
from tests.support.entry_schemas import relay_fields

STREAM = "anyformat:events"
DASH = "\u2013"


@pytest.fixture
async def relay(start_relay: StartRelay, redis_url: str) -> RelayServer:
    return await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A client keeping cookies for 127.0.0.1, as a browser does."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def admin(relay: RelayServer, path: str) -> str:
    return f"http://127.0.0.1:{relay.admin_port}{path}"


async def logged_in(browser: aiohttp.ClientSession, relay: RelayServer) -> str:
    """Log in through the form; the overview page's HTML."""
    async with browser.post(admin(relay, "/console/login"), data={"token": TOKEN}) as answer:
        assert answer.status == 200 and answer.url.path == "/console/"
        return await answer.text()


async def test_the_console_asks_for_the_token_first(
    relay: RelayServer, browser: aiohttp.ClientSession
) -> None:
    async with browser.get(admin(relay, "/console/")) as answer:
        assert answer.url.path == "/console/login"
        page = await answer.text()
    assert 'type="password"' in page and 'action="/console/login"' in page


async def test_a_wrong_token_shows_the_form_again_and_no_session(
    relay: RelayServer, browser: aiohttp.ClientSession
) -> None:
    async with browser.post(
        admin(relay, "/console/login"), data={"token": "not-the-token-000000"}
    ) as answer:
        assert answer.status == 401
        assert "That is not the token." in await answer.text()
    assert not [c for c in browser.cookie_jar if c.key == SESSION_COOKIE]
    async with browser.get(admin(relay, "/console/")) as answer:
        assert answer.url.path == "/console/login"


async def test_the_right_token_opens_the_overview_and_logging_out_closes_it(
    relay: RelayServer, browser: aiohttp.ClientSession
) -> None:
    page = await logged_in(browser, relay)
    assert "<h1>Overview</h1>" in page
    async with browser.get(admin(relay, "/console/login")) as answer:
        assert answer.url.path == "/console/"  # logged in: no second login
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    async with browser.post(admin(relay, "/console/logout"), data={}) as answer:
        assert answer.status == 403  # no CSRF token: refused, still logged in
    async with browser.post(
        admin(relay, "/console/logout"), data={"csrf": csrf.group(1)}
    ) as answer:
        assert answer.url.path == "/console/login"
    async with browser.get(admin(relay, "/console/")) as answer:
        assert answer.url.path == "/console/login"


async def test_the_overview_shows_the_figures_redis_holds(
    relay: RelayServer, browser: aiohttp.ClientSession, redis_sync: redis.Redis
) -> None:
    for n in range(1234):
        redis_sync.xadd(STREAM, relay_fields(n))
    redis_sync.xgroup_create(STREAM, "billing", id="0")
    redis_sync.xreadgroup("billing", "worker-a", {STREAM: ">"}, count=34)
    page = await logged_in(browser, relay)
    section = page.split(f"<code>{STREAM}</code></h2>", 1)[1].split("</section>", 1)[0]
    assert '<dd data-figure="length">1\u2009234</dd>' in section
    row = section.split('data-group="billing"', 1)[1].split("</tr>", 1)[0]
    assert 'data-figure="pending">34</td>' in row
    assert 'data-figure="lag">1\u2009200</td>' in row
    assert 'data-figure="consumers">1</td>' in row


async def test_names_from_redis_are_text_on_the_page(
    relay: RelayServer, browser: aiohttp.ClientSession, redis_sync: redis.Redis
) -> None:
    redis_sync.xadd(STREAM, relay_fields(1))
    redis_sync.xgroup_create(STREAM, "<img src=x onerror=alert(1)>", id="0")
    page = await logged_in(browser, relay)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_the_stylesheet_and_script_come_from_the_package_without_a_session(
    relay: RelayServer, browser: aiohttp.ClientSession
) -> None:
    for name, kind in (("console.css", "text/css"), ("console.js", "javascript")):
        async with browser.get(admin(relay, f"/console/static/{name}")) as answer:
            assert answer.status == 200 and kind in answer.headers["Content-Type"]
            assert answer.headers["Cache-Control"] == "no-store"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
    for escape in ("../pages.py", "%2e%2e/pages.py", "..%2fpages.py"):
        url = yarl.URL(admin(relay, "/console/static/" + escape), encoded=True)
        async with browser.get(url) as answer:
            assert "def console_routes" not in await answer.text()


async def test_pages_are_answered_503_with_a_notice_while_redis_is_away(
    start_relay: StartRelay, browser: aiohttp.ClientSession
) -> None:
    from tests.support.redis_server import free_port

    relay = await start_relay(f"redis://127.0.0.1:{free_port()}/0", RELAY_ADMIN_TOKEN=TOKEN)
    async with browser.post(admin(relay, "/console/login"), data={"token": TOKEN}) as answer:
        assert answer.status == 503
        assert "Redis is not answering" in await answer.text()


def test_figures_read_as_a_person_reads_them() -> None:
    assert [duration(s) for s in (None, 0.42, 12, 185, 7800, 3 * 86400 + 4 * 3600)] == [
        DASH, "0.4 s", "12 s", "3 min 5 s", "2 h 10 min", "3 d 4 h",
    ]  # fmt: skip
    assert [count(n) for n in (None, 7, 1234567)] == [DASH, "7", "1\u2009234\u2009567"]
    assert moment("2026-12-07T23:41:05.120Z") == "2026-12-07 23:41:05 UTC"
    assert moment(None) == DASH
