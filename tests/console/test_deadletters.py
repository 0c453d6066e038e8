"""The console's dead-letter page on a real relay and Redis: filter, select, see the dry
run's count, run the job, and each entry is back on its stream once."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis
from redis.asyncio import Redis

from relay.receiver.app import RelayServer
from relay.worker.deadletter import dead_letter, dlq_stream
from tests.conftest import StartRelay
from tests.operator.conftest import TOKEN
from tests.support.signing import event_body, sign
from tests.support.waiting import wait_for

STREAM = "anyformat:events"
GROUP = "billing"


@pytest.fixture
async def relay(start_relay: StartRelay, redis_url: str) -> RelayServer:
    return await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)


@pytest.fixture
async def browser(relay: RelayServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        url = f"http://127.0.0.1:{relay.admin_port}/console/login"
        async with session.post(url, data={"token": TOKEN}) as answer:
            assert answer.status == 200
        yield session


async def dead_letters(relay: RelayServer, client: Redis, errors: list[str]) -> list[str]:
    """One delivery per error, read by the group and moved to the DLQ as a worker does."""
    async with aiohttp.ClientSession() as http:
        for n, _ in enumerate(errors):
            body = event_body(extraction_id=f"ex-dead-{n}")
            async with http.post(
                f"http://127.0.0.1:{relay.public_port}/webhooks/anyformat",
                data=body,
                headers=sign(body, msg_id=f"msg_dead_{n}"),
            ) as answer:
                assert answer.status == 200
    await client.xgroup_create(STREAM, GROUP, id="0")
    [(_, entries)] = await client.xreadgroup(GROUP, "worker-a", {STREAM: ">"})
    for (entry_id, fields), error in zip(entries, errors, strict=True):
        await dead_letter(client, STREAM, GROUP, entry_id.decode(), fields,
                          error=error, attempts=5)  # fmt: skip
    return [entry_id.decode() for entry_id, _ in await client.xrange(dlq_stream(STREAM))]


def url(relay: RelayServer, path: str) -> str:
    return f"http://127.0.0.1:{relay.admin_port}/console/streams/{STREAM}/dead-letters{path}"


def csrf_in(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def ticked(page: str) -> list[str]:
    return re.findall(r'<tr data-entry="([^"]+)"', page)


async def test_the_list_is_newest_first_and_filters_narrow_it(
    relay: RelayServer, browser: aiohttp.ClientSession, client: Redis
) -> None:
    ids = await dead_letters(relay, client, ["TimeoutError", "ValueError: bad", "TimeoutError"])
    async with browser.get(url(relay, "")) as answer:
        assert answer.status == 200
        assert ticked(await answer.text()) == ids[::-1]
    async with browser.get(url(relay, ""), params={"error": "timeout"}) as answer:
        assert ticked(await answer.text()) == [ids[2], ids[0]]
    async with browser.get(url(relay, ""), params={"group": "nobody"}) as answer:
        assert 'id="no-letters"' in await answer.text()
    async with browser.get(url(relay, ""), params={"since": "yesterday"}) as answer:
        assert answer.status == 400


async def test_ticked_entries_are_counted_then_replayed_each_once(
    relay: RelayServer,
    browser: aiohttp.ClientSession,
    client: Redis,
    redis_sync: redis.Redis,
) -> None:
    ids = await dead_letters(relay, client, ["boom"] * 4)
    async with browser.get(url(relay, "")) as answer:
        csrf = csrf_in(await answer.text())
    chosen = {"csrf": csrf, "action": "replay", "scope": "ids"}
    form = aiohttp.FormData([*chosen.items(), ("ids", ids[0]), ("ids", ids[2])])
    async with browser.post(url(relay, "/confirm"), data=form) as answer:
        page = await answer.text()
        assert answer.status == 200
    assert '<strong data-figure="matched">2</strong>' in page
    assert redis_sync.xlen(dlq_stream(STREAM)) == 4  # the dry run did nothing
    confirm = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    for _ in range(2):  # the confirmation sent twice: each entry still goes back once
        async with browser.post(url(relay, "/act"), data=aiohttp.FormData(confirm)) as answer:
            assert answer.status == 200 and "/console/jobs/" in str(answer.url)
            job_url = str(answer.url).split("?", 1)[0]

        await wait_for(lambda url=job_url: job_done(browser, url), what="the job done")
    originals = [f[b"original_id"].decode() for _, f in redis_sync.xrange(dlq_stream(STREAM))]
    assert len(originals) == 2
    counts = Counter(f[b"id"] for _, f in redis_sync.xrange(STREAM))
    # The ticked two are back on the stream once each (beside their first copies); the
    # others not at all.
    assert counts == {b"msg_dead_0": 2, b"msg_dead_1": 1, b"msg_dead_2": 2, b"msg_dead_3": 1}


async def job_done(browser: aiohttp.ClientSession, job_url: str) -> bool:
    async with browser.get(job_url) as job:
        return 'data-figure="state">done<' in await job.text()


async def test_all_matching_purges_what_the_filter_counted(
    relay: RelayServer, browser: aiohttp.ClientSession, client: Redis, redis_sync: redis.Redis
) -> None:
    await dead_letters(relay, client, ["TimeoutError", "ValueError", "TimeoutError"])
    async with browser.get(url(relay, ""), params={"error": "Timeout"}) as answer:
        csrf = csrf_in(await answer.text())
    form = {"csrf": csrf, "action": "purge", "scope": "all", "error": "Timeout",
            "event": "", "group": "", "since": "", "until": ""}  # fmt: skip
    async with browser.post(url(relay, "/confirm"), data=form) as answer:
        page = await answer.text()
    assert '<strong data-figure="matched">2</strong>' in page and "deleted for good" in page
    confirm = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    async with browser.post(url(relay, "/act"), data=aiohttp.FormData(confirm)) as answer:
        job_url = str(answer.url)

    await wait_for(lambda: job_done(browser, job_url), what="the job done")
    left = [f[b"error"] for _, f in redis_sync.xrange(dlq_stream(STREAM))]
    assert left == [b"ValueError"]


async def test_nothing_ticked_is_a_question_not_an_action(
    relay: RelayServer, browser: aiohttp.ClientSession, client: Redis
) -> None:
    await dead_letters(relay, client, ["boom"])
    async with browser.get(url(relay, "")) as answer:
        csrf = csrf_in(await answer.text())
    form = {"csrf": csrf, "action": "replay", "scope": "ids"}
    async with browser.post(url(relay, "/confirm"), data=form) as answer:
        assert answer.status == 400
        assert "Tick at least one" in await answer.text()


async def test_an_unknown_stream_is_404(relay: RelayServer, browser: aiohttp.ClientSession) -> None:
    async with browser.get(
        f"http://127.0.0.1:{relay.admin_port}/console/streams/elsewhere/dead-letters"
    ) as answer:
        assert answer.status == 404
