"""The two v3 list calls reconciliation needs: workflows, and a workflow's runs.

Keyset pages (``limit``, ``cursor``; follow ``next_cursor`` until ``null``), newest first,
no totals and no server-side filter. Errors, ``Retry-After`` and the API key's secrecy are
the registration client's, which this extends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from relay.registration.client import AnyFormatClient, ApiUnavailable, with_retries

PAGE_SIZE = 100  # the API's maximum
ATTEMPTS = 5  # per page, on 429 / 5xx / network errors (Retry-After honoured)


@dataclass(frozen=True, slots=True)
class Run:
    """One item of ``GET /v3/workflows/{id}/runs/``."""

    id: str
    status: str
    created_at: datetime | None
    updated_at: datetime | None
    updated_at_text: str | None  # as the API wrote it, for the recovered payload


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (UTC when it names no zone); ``None`` for null or garbage."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _run(item: Any) -> Run | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str | int):
        return None
    updated = item.get("updated_at")
    return Run(
        id=str(item["id"]),
        status=str(item.get("status") or ""),
        created_at=parse_time(item.get("created_at")),
        updated_at=parse_time(updated),
        updated_at_text=updated if isinstance(updated, str) and updated else None,
    )


class RunsApi(AnyFormatClient):
    """The registration client plus the v3 lists; counts its calls for the sweep's report."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    async def _page(self, path: str, cursor: str | None) -> tuple[list[Any], str | None]:
        query = {"limit": PAGE_SIZE} | ({"cursor": cursor} if cursor is not None else {})
        target = f"{path}?{urlencode(query)}"

        async def get() -> Any:
            self.calls += 1
            _, document = await self._request("GET", target)
            return document

        document = await with_retries(get, what=f"GET {path}", attempts=ATTEMPTS)
        items = document.get("items") if isinstance(document, dict) else None
        next_cursor = document.get("next_cursor") if isinstance(document, dict) else None
        if not isinstance(items, list) or not (next_cursor is None or isinstance(next_cursor, str)):
            raise ApiUnavailable(f"GET {path}: unexpected answer (no items / next_cursor)")
        return items, next_cursor

    async def _pages(self, path: str) -> AsyncIterator[list[Any]]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            items, cursor = await self._page(path, cursor)
            yield items
            if cursor is None:
                return
            if cursor in seen:  # a server bug would otherwise make this walk endless
                raise ApiUnavailable(f"GET {path}: next_cursor repeats itself")
            seen.add(cursor)

    async def workflow_ids(self) -> AsyncIterator[str]:
        """Every workflow of the organisation (old ones can have new runs: all pages)."""
        async for items in self._pages("/v3/workflows/"):
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("id"), str | int):
                    yield str(item["id"])

    async def run_pages(self, workflow_id: str) -> AsyncIterator[list[Run]]:
        """A workflow's runs, page by page, newest first; the caller stops when it has
        seen enough."""
        async for items in self._pages(f"/v3/workflows/{quote(workflow_id, safe='')}/runs/"):
            yield [run for run in map(_run, items) if run is not None]
