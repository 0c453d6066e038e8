"""The console's event page on a real relay and Redis: found by event id or extraction id,
each stream and group's state shown, the payload shown as text."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis

from relay.receiver.app import RelayServer
from tests.conftest import StartRelay
from tests.operator.conftest import TOKEN
from tests.support.signing import event_body, sign

STREAM = "anyformat:events"
MARKUP = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"


@pytest.fixture
async def relay(start_relay: StartRelay, redis_url: str) -> RelayServer:
    return await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)


@pytest.fixture
async def browser(relay: RelayServer) -> AsyncIterator[aiohttp.ClientSession]:
    """A logged-in client keeping its session cookie."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        url = f"http://127.0.0.1:{relay.admin_port}/console/login"
        async with session.post(url, data={"token": TOKEN}) as answer:
            assert answer.status == 200
        yield session


async def deliver(relay: RelayServer, msg_id: str, extraction_id: str, **extra: str) -> None:
    body = event_body(extraction_id=extraction_id, **extra)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{relay.public_port}/webhooks/anyformat",
            data=body,
            headers=sign(body, msg_id=msg_id),
        ) as answer,
    ):
        assert answer.status == 200


async def event_page(
    browser: aiohttp.ClientSession, relay: RelayServer, query: str
) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{relay.admin_port}/console/events"
    async with browser.get(url, params={"q": query}) as answer:
        return answer.status, str(answer.url), await answer.text()


async def test_an_event_id_shows_each_stream_and_each_groups_state(
    relay: RelayServer, browser: aiohttp.ClientSession, redis_sync: redis.Redis
) -> None:
    await deliver(relay, "msg_page_1", "ex-page-1")
    redis_sync.xgroup_create(STREAM, "billing", id="0")
    redis_sync.xgroup_create(STREAM, "audit", id="0")
    redis_sync.xreadgroup("billing", "worker-a", {STREAM: ">"}, count=1)
    status, _, page = await event_page(browser, relay, "msg_page_1")
    assert status == 200
    assert '<code data-field="id">msg_page_1</code>' in page
    [(entry_id, _)] = redis_sync.xrange(STREAM)
    streams = page.split('<li data-stream="')[1:]
    assert {part.split('"', 1)[0] for part in streams} == {
        STREAM, "anyformat:events:extraction.completed",
    }  # fmt: skip
    main = next(part for part in streams if part.startswith(f'{STREAM}"'))
    assert f"entry <code>{entry_id.decode()}</code>" in main
    assert 'data-group="billing"' in main and 'data-state="in_progress"' in main
    assert "held by <code>worker-a</code>, attempt 1" in main
    audit = main.split('data-group="audit"', 1)[1]
    assert 'data-state="waiting"' in audit.split("</li>", 1)[0]


async def test_an_extraction_id_leads_to_its_events(
    relay: RelayServer, browser: aiohttp.ClientSession
) -> None:
    await deliver(relay, "msg_only", "ex-single")
    status, url, page = await event_page(browser, relay, "ex-single")
    assert status == 200 and url.endswith("q=msg_only")  # one event: straight to its trail
    await deliver(relay, "msg_twice_1", "ex-twice")
    await deliver(relay, "msg_twice_2", "ex-twice", event="extraction.failed")
    status, url, page = await event_page(browser, relay, "ex-twice")
    assert status == 200 and "q=ex-twice" in url
    assert "msg_twice_1" in page and "msg_twice_2" in page


async def test_an_unknown_id_is_404_with_the_search_box(
    relay: RelayServer, browser: aiohttp.ClientSession
) -> None:
    status, _, page = await event_page(browser, relay, "msg_nobody")
    assert status == 404
    assert 'id="not-found"' in page and 'name="q" value="msg_nobody"' in page


async def test_the_payload_is_shown_as_text(
    relay: RelayServer, browser: aiohttp.ClientSession
) -> None:
    await deliver(relay, "msg_markup", "ex-markup", note=MARKUP)
    status, _, page = await event_page(browser, relay, "msg_markup")
    assert status == 200
    payload = page.split('data-field="payload">', 1)[1].split("</pre>", 1)[0]
    assert MARKUP not in page
    assert MARKUP in html.unescape(payload)
