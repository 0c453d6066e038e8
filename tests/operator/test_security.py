"""The operator guard, rule by rule, each both ways, over a real socket."""

from __future__ import annotations

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from relay.operator.security import (
    FAILURE_LIMIT,
    FAILURE_WINDOW,
    SESSION_COOKIE,
    OperatorSecurity,
    Sessions,
)
from tests.operator.conftest import TOKEN, Guarded, guarded_app

# --- off unless the token is set ---------------------------------------------------------


async def test_without_a_token_there_is_no_operator_surface(
    http: aiohttp.ClientSession,
) -> None:
    server = TestServer(guarded_app(None), host="127.0.0.1")
    await server.start_server()
    try:
        for path in ("/api/things", "/console/"):
            async with http.get(server.make_url(path)) as response:
                assert response.status == 404
        async with http.get(server.make_url("/healthz")) as response:
            assert response.status == 200
    finally:
        await server.close()


async def test_probes_and_metrics_need_no_token_and_keep_their_headers(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        async with http.get(guarded.url + path) as response:
            assert response.status == 200
            assert "Cache-Control" not in response.headers
            assert "Content-Security-Policy" not in response.headers


# --- the API's token -----------------------------------------------------------------------


async def test_the_right_bearer_token_is_let_in(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {TOKEN}"}
        async with http.get(f"{guarded.url}/api/things", headers=headers) as response:
            assert response.status == 200
            assert await response.json() == {"ok": True}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"X-Api-Key": TOKEN},
    ],
    ids=["missing", "longer", "shorter", "empty", "basic", "no-scheme", "other-header"],
)
async def test_a_missing_or_wrong_token_is_401_json(
    guarded: Guarded, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with http.get(f"{guarded.url}/api/things", headers=headers) as response:
        assert response.status == 401
        assert await response.json() == {"error": "unauthorized"}
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_token_in_the_query_string_is_never_taken(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    for name in ("token", "access_token", "bearer"):
        url = f"{guarded.url}/api/things?{name}={TOKEN}"
        async with http.get(url) as response:
            assert response.status == 401


async def test_an_unknown_api_path_is_404_json_to_the_token_and_401_to_others(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{guarded.url}/api/nothing", headers=guarded.bearer()) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    async with http.get(f"{guarded.url}/api/nothing") as response:
        assert response.status == 401  # nothing about the routes is told without the token


def test_the_token_is_compared_whatever_its_length() -> None:
    security = OperatorSecurity(SecretStr(TOKEN))
    assert security.token_matches(TOKEN)
    assert not security.token_matches(TOKEN + TOKEN)
    assert not security.token_matches("")
    assert TOKEN not in repr(security)


# --- failures from one address --------------------------------------------------------------


async def failures(guarded: Guarded, http: aiohttp.ClientSession, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        headers = guarded.bearer("wrong-token-0000000000")
        async with http.get(f"{guarded.url}/api/things", headers=headers) as response:
            statuses.append(response.status)
    return statuses


async def right_token_status(guarded: Guarded, http: aiohttp.ClientSession) -> int:
    async with http.get(f"{guarded.url}/api/things", headers=guarded.bearer()) as response:
        return response.status


async def test_ten_failures_in_a_minute_still_let_the_right_token_in(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    assert await failures(guarded, http, FAILURE_LIMIT) == [401] * FAILURE_LIMIT
    assert await right_token_status(guarded, http) == 200


async def test_the_eleventh_failure_shuts_the_address_out_for_a_minute_whatever_it_sends(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    assert await failures(guarded, http, FAILURE_LIMIT + 1) == [401] * (FAILURE_LIMIT + 1)
    assert await failures(guarded, http, 1) == [429]
    async with http.get(f"{guarded.url}/api/things", headers=guarded.bearer()) as response:
        assert response.status == 429
        assert await response.json() == {"error": "too_many_failures"}
        assert int(response.headers["Retry-After"]) == FAILURE_WINDOW
    async with http.post(f"{guarded.url}/console/login", data={"token": TOKEN}) as response:
        assert response.status == 429
    guarded.clock.now += FAILURE_WINDOW - 0.001
    assert await right_token_status(guarded, http) == 429
    guarded.clock.now += 0.001
    assert await right_token_status(guarded, http) == 200


async def test_failures_older_than_a_minute_no_longer_count(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    assert await failures(guarded, http, FAILURE_LIMIT) == [401] * FAILURE_LIMIT
    guarded.clock.now += FAILURE_WINDOW
    assert await failures(guarded, http, 1) == [401]
    assert await right_token_status(guarded, http) == 200


async def test_another_address_is_not_shut_out(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    await failures(guarded, http, FAILURE_LIMIT + 1)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as elsewhere:
        assert await right_token_status(guarded, elsewhere) == 200
    assert await right_token_status(guarded, http) == 429


# --- cross-site requests ----------------------------------------------------------------


@pytest.mark.parametrize("site", ["cross-site", "same-site", "none"])
async def test_a_non_get_from_another_site_is_403_even_with_the_token(
    guarded: Guarded, http: aiohttp.ClientSession, site: str
) -> None:
    headers = {**guarded.bearer(), "Sec-Fetch-Site": site}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        async with http.request(
            method, f"{guarded.url}/api/things/act", headers=headers
        ) as response:
            assert response.status == 403
            assert await response.json() == {"error": "cross_site_request"}


async def test_a_non_get_from_the_same_origin_or_a_non_browser_goes_through(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    for extra in ({"Sec-Fetch-Site": "same-origin"}, {}):
        headers = {**guarded.bearer(), **extra}
        async with http.post(f"{guarded.url}/api/things/act", headers=headers) as response:
            assert response.status == 200


async def test_a_get_from_another_site_is_not_refused_for_its_origin(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    headers = {**guarded.bearer(), "Sec-Fetch-Site": "cross-site"}
    async with http.get(f"{guarded.url}/api/things", headers=headers) as response:
        assert response.status == 200


# --- headers on every answer ----------------------------------------------------------------


async def test_every_operator_answer_is_no_store_and_nosniff(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    answers = [
        ("GET", "/api/things", guarded.bearer()),  # 200
        ("GET", "/api/things", {}),  # 401
        ("GET", "/api/nothing", guarded.bearer()),  # 404
        ("POST", "/api/things/act", {**guarded.bearer(), "Sec-Fetch-Site": "cross-site"}),
        ("GET", "/console/", {}),  # redirect to the login
        ("POST", "/console/login", {}),  # wrong login
    ]
    for method, path, headers in answers:
        async with http.request(
            method, guarded.url + path, headers=headers, allow_redirects=False
        ) as response:
            assert response.headers["Cache-Control"] == "no-store", (method, path)
            assert response.headers["X-Content-Type-Options"] == "nosniff", (method, path)
    await failures(guarded, http, FAILURE_LIMIT + 1)
    async with http.get(f"{guarded.url}/api/things") as response:
        assert response.status == 429
        assert response.headers["Cache-Control"] == "no-store"


async def test_pages_forbid_inline_script_and_framing(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    cookie = await log_in(guarded, http)
    async with http.get(f"{guarded.url}/console/", headers=cookie) as response:
        assert response.status == 200
        policy = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy


# --- the console's session and CSRF token ---------------------------------------------------


async def log_in(guarded: Guarded, http: aiohttp.ClientSession) -> dict[str, str]:
    """Log in with the form; the Cookie header that carries the session."""
    async with http.post(
        f"{guarded.url}/console/login", data={"token": TOKEN}, allow_redirects=False
    ) as response:
        assert response.status == 303
        morsel = response.cookies[SESSION_COOKIE]
    return {"Cookie": f"{SESSION_COOKIE}={morsel.value}"}


async def csrf_of(guarded: Guarded, http: aiohttp.ClientSession, cookie: dict[str, str]) -> str:
    async with http.get(f"{guarded.url}/console/", headers=cookie) as response:
        text = await response.text()
    return text.split("data-csrf='", 1)[1].split("'", 1)[0]


async def test_a_wrong_login_sets_no_cookie_and_counts_as_a_failure(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    for data in ({"token": "not-the-token-000000"}, {}, {"token": ""}):
        async with http.post(f"{guarded.url}/console/login", data=data) as response:
            assert response.status == 401
            assert SESSION_COOKIE not in response.cookies
    assert await failures(guarded, http, FAILURE_LIMIT - 2) == [401] * (FAILURE_LIMIT - 2)
    assert await right_token_status(guarded, http) == 429


async def test_the_right_login_sets_a_strict_http_only_expiring_cookie(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{guarded.url}/console/login", data={"token": TOKEN}, allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/console/"
        header = response.headers["Set-Cookie"]
    attributes = {part.strip().split("=", 1)[0].lower(): part for part in header.split(";")}
    assert "httponly" in attributes
    assert attributes["samesite"].split("=")[1].strip() == "Strict"
    assert attributes["path"].split("=")[1].strip() == "/"
    assert int(attributes["max-age"].split("=")[1]) == guarded.security.sessions.lifetime
    assert TOKEN not in header


async def test_pages_need_the_session_and_send_others_to_the_login(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    cookie = await log_in(guarded, http)
    async with http.get(f"{guarded.url}/console/", headers=cookie) as response:
        assert response.status == 200
    forged = {"Cookie": cookie["Cookie"][:-2] + "AA"}
    for headers in ({}, forged, {"Cookie": f"{SESSION_COOKIE}=x.y.z"}):
        async with http.get(
            f"{guarded.url}/console/", headers=headers, allow_redirects=False
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/console/login"


async def test_a_session_ends_when_it_expires(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    cookie = await log_in(guarded, http)
    guarded.clock.now += guarded.security.sessions.lifetime - 1
    async with http.get(f"{guarded.url}/console/", headers=cookie) as response:
        assert response.status == 200
    guarded.clock.now += 1
    async with http.get(
        f"{guarded.url}/console/", headers=cookie, allow_redirects=False
    ) as response:
        assert response.status == 303


async def test_a_session_signed_with_another_token_is_not_accepted(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    value, _ = Sessions(SecretStr("another-token-entirely-00")).issue()
    async with http.get(
        f"{guarded.url}/console/",
        headers={"Cookie": f"{SESSION_COOKIE}={value}"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303


async def test_a_console_post_without_the_right_csrf_token_is_403(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    cookie = await log_in(guarded, http)
    other = await log_in(guarded, http)
    others_csrf = await csrf_of(guarded, http, other)
    for data in ({"note": "x"}, {"note": "x", "csrf": ""}, {"note": "x", "csrf": others_csrf}):
        async with http.post(f"{guarded.url}/console/act", data=data, headers=cookie) as answer:
            assert answer.status == 403
            assert await answer.json() == {"error": "csrf_token_missing_or_wrong"}


async def test_a_console_post_with_its_csrf_token_goes_through(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    cookie = await log_in(guarded, http)
    csrf = await csrf_of(guarded, http, cookie)
    async with http.post(
        f"{guarded.url}/console/act", data={"note": "kept", "csrf": csrf}, headers=cookie
    ) as response:
        assert response.status == 200
        assert await response.json() == {"done": True, "note": "kept"}  # the form read twice
    headers = {**cookie, "X-CSRF-Token": csrf}
    async with http.post(f"{guarded.url}/console/act", headers=headers) as response:
        assert response.status == 200


async def test_a_console_post_without_a_session_is_401(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{guarded.url}/console/act", data={"csrf": "x"}) as response:
        assert response.status == 401


async def test_the_api_takes_the_session_for_reads_and_its_csrf_header_for_actions(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    cookie = await log_in(guarded, http)
    csrf = await csrf_of(guarded, http, cookie)
    async with http.get(f"{guarded.url}/api/things", headers=cookie) as response:
        assert response.status == 200
    async with http.post(f"{guarded.url}/api/things/act", headers=cookie) as response:
        assert response.status == 403
    headers = {**cookie, "X-CSRF-Token": csrf}
    async with http.post(f"{guarded.url}/api/things/act", headers=headers) as response:
        assert response.status == 200


# --- the token stays secret -----------------------------------------------------------------


async def test_failures_are_logged_with_the_address_never_the_token(
    guarded: Guarded, http: aiohttp.ClientSession
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with http.get(
            f"{guarded.url}/api/things", headers=guarded.bearer(TOKEN + "-wrong")
        ) as response:
            assert response.status == 401
        await log_in(guarded, http)
    failure = next(line for line in logs if line["event"] == "operator_auth_failed")
    assert failure["remote"] == "127.0.0.1"
    assert any(line["event"] == "audit" and line["action"] == "login" for line in logs)
    assert TOKEN not in repr(logs)
