"""The relay's admin port: the operator surface exists only with RELAY_ADMIN_TOKEN, and then
only behind the guard; probes and scrapes are untouched either way."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartRelay
from tests.operator.conftest import TOKEN
from tests.support.settings import BASE, problems
from tests.test_settings import run_cli


async def test_the_relay_guards_its_operator_paths_once_the_token_is_set(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url, RELAY_ADMIN_TOKEN=TOKEN)
    admin = f"http://127.0.0.1:{server.admin_port}"
    async with http.get(f"{admin}/api/nothing") as response:
        assert response.status == 401
        assert response.headers["Cache-Control"] == "no-store"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with http.get(f"{admin}/api/nothing", headers=bearer) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    async with http.get(f"{admin}/readyz") as response:
        assert response.status == 200


async def test_without_the_token_the_relay_has_no_operator_paths(
    start_relay: StartRelay, redis_url: str, http: aiohttp.ClientSession
) -> None:
    server = await start_relay(redis_url)
    admin = f"http://127.0.0.1:{server.admin_port}"
    async with http.get(f"{admin}/api/nothing") as response:
        assert response.status == 404
        assert "Cache-Control" not in response.headers


def test_a_short_token_is_refused_without_echoing_it() -> None:
    [line] = problems(RELAY_ADMIN_TOKEN="short-secret")
    assert line.startswith("RELAY_ADMIN_TOKEN: must be at least 16 characters")
    assert "short-secret" not in line


def test_relay_config_masks_the_token() -> None:
    result = run_cli("config", env={**BASE, "RELAY_ADMIN_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    assert "RELAY_ADMIN_TOKEN=********" in result.stdout
    assert TOKEN not in result.stdout
