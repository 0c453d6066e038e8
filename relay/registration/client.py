"""A small client for AnyFormat's webhook API, following its published OpenAPI.

The API key travels only in the ``Authorization`` header; no error, log line or repr of
this module contains it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import orjson
import structlog
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from relay.version import __version__

log = structlog.get_logger("relay.anyformat")
T = TypeVar("T")


class Webhook(BaseModel):
    """A subscription as ``GET /v2/webhooks/`` lists it (never with its secret)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    url: str
    events: list[str]
    is_active: bool
    created_at: str


class CreatedWebhook(Webhook):
    """``POST /v2/webhooks/``'s answer: the only time the secret is shown."""

    secret: SecretStr


class ApiError(Exception):
    """Base of the client's errors; messages never contain the API key."""


class ApiKeyRejected(ApiError):
    def __init__(self, status: int) -> None:
        super().__init__(
            f"AnyFormat rejected ANYFORMAT_API_KEY (HTTP {status}): check the key and its "
            "permissions"
        )


class ApiValidationError(ApiError):
    def __init__(self, status: int, details: list[str]) -> None:
        self.details = details
        super().__init__(f"AnyFormat refused the request (HTTP {status}): " + "; ".join(details))


class ApiUnavailable(ApiError):
    """Worth retrying: 429, 5xx, timeouts, connection errors."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _details(document: Any) -> list[str]:
    detail = document.get("detail") if isinstance(document, dict) else None
    if isinstance(detail, str):
        return [detail]
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc", []))
                lines.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
            else:
                lines.append(str(item))
        return lines
    return ["no detail given"]


class AnyFormatClient:
    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        connect_timeout: float = 5.0,
        total_timeout: float = 30.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AnyFormatClient({self._base!r})"

    async def __aenter__(self) -> AnyFormatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={
                    "Authorization": f"Bearer {self._api_key.get_secret_value()}",
                    "User-Agent": f"anyformat-relay/{__version__}",
                    "Accept": "application/json",
                },
            )
        return self._session

    async def _request(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        try:
            async with self._http().request(method, self._base + path, json=json) as response:
                status = response.status
                body = await response.read()
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiUnavailable(f"{method} {path}: {type(exc).__name__}") from None
        document: Any = None
        if body:
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                document = None
        if status in (401, 403):
            raise ApiKeyRejected(status)
        if status == 429:
            raise ApiUnavailable(f"{method} {path}: HTTP 429 (rate limited)", retry_after)
        if status >= 500:
            raise ApiUnavailable(f"{method} {path}: HTTP {status}", retry_after)
        if status >= 400 and not (method == "DELETE" and status == 404):
            raise ApiValidationError(status, _details(document))
        return status, document

    async def list_webhooks(self) -> list[Webhook]:
        _, document = await self._request("GET", "/v2/webhooks/")
        try:
            return [Webhook.model_validate(item) for item in document]
        except (TypeError, ValidationError) as exc:
            raise ApiUnavailable(f"GET /v2/webhooks/: unexpected answer ({exc})") from None

    async def create_webhook(self, url: str, events: list[str]) -> CreatedWebhook:
        _, document = await self._request("POST", "/v2/webhooks/", {"url": url, "events": events})
        try:
            return CreatedWebhook.model_validate(document)
        except ValidationError as exc:
            raise ApiUnavailable(f"POST /v2/webhooks/: unexpected answer ({exc})") from None

    async def delete_webhook(self, webhook_id: str) -> bool:
        """True when deleted now, False when it was already gone (404)."""
        status, _ = await self._request("DELETE", f"/v2/webhooks/{webhook_id}/")
        return status != 404


backoff_sleep = asyncio.sleep  # the tests record the waits instead of sleeping them


def retry_delay(failures: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Capped exponential backoff with full jitter, after ``failures`` failures in a row."""
    return random.uniform(0, min(cap, base * 2 ** (failures - 1)))


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    base: float = 0.5,
    cap: float = 30.0,
    attempts: int | None = None,
    before_retry: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Retry ``call`` on :class:`ApiUnavailable`: ``Retry-After`` when the API gives one,
    else capped exponential backoff with full jitter. Other errors are final.

    ``before_retry`` runs after each wait, before the next attempt: a call whose answer was
    lost may have taken effect, and this is where the caller finds out.
    """
    failures = 0
    while True:
        try:
            return await call()
        except ApiUnavailable as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancellation that the HTTP stack reported as a failed request: stop,
                # do not retry it away.
                raise asyncio.CancelledError from exc
            failures += 1
            if attempts is not None and failures >= attempts:
                raise
            if exc.retry_after is not None:
                delay = min(exc.retry_after, 300.0)
            else:
                delay = retry_delay(failures, base=base, cap=cap)
            log.warning("anyformat_retry", call=what, error=str(exc), retry_in_s=round(delay, 3))
            await backoff_sleep(delay)
            if before_retry is not None:
                await before_retry()
