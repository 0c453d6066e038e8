"""Sending deliveries to a relay under test."""

from __future__ import annotations

import asyncio

import aiohttp

from relay.receiver.app import RelayServer


async def concurrent_copies(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], copies: int
) -> list[str]:
    """POST ``copies`` identical deliveries at once; each must be answered 200. Returns
    the answers' ``status`` values (accepted / duplicate), sorted."""

    async def post() -> str:
        async with http.post(url, data=body, headers=headers) as response:
            assert response.status == 200
            return str((await response.json())["status"])

    return sorted(await asyncio.gather(*(post() for _ in range(copies))))


async def relay_metrics(http: aiohttp.ClientSession, server: RelayServer) -> str:
    """The relay's /metrics text, fetched over its admin port."""
    async with http.get(f"http://127.0.0.1:{server.admin_port}/metrics") as response:
        return await response.text()
