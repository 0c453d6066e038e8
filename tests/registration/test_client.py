"""The AnyFormat client against the fake API, over real sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from relay import __version__
from relay.registration.client import (
    AnyFormatClient,
    ApiKeyRejected,
    ApiUnavailable,
    ApiValidationError,
    parse_retry_after,
    with_retries,
)
from tests.registration.conftest import EVENTS, PUBLIC_URL
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat


async def test_create_list_delete_follow_the_openapi(
    api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    created = await api_client.create_webhook(PUBLIC_URL, EVENTS)
    assert created.id.startswith("wh_") and created.secret.get_secret_value().startswith("whsec_")
    assert created.is_active and created.events == EVENTS
    [listed] = await api_client.list_webhooks()
    assert listed.id == created.id and not hasattr(listed, "secret")
    assert await api_client.delete_webhook(created.id) is True
    assert await api_client.delete_webhook(created.id) is False  # already gone: 404
    call = fake_api.calls[0]
    assert call.authorization == f"Bearer {API_KEY}"
    assert call.user_agent == f"anyformat-relay/{__version__}"
    assert [c.path for c in fake_api.calls] == [
        "/v2/webhooks/",
        "/v2/webhooks/",
        f"/v2/webhooks/{created.id}/",
        f"/v2/webhooks/{created.id}/",
    ]


async def test_a_rejected_key_never_shows_the_key(fake_api: FakeAnyFormat) -> None:
    async with AnyFormatClient(fake_api.url, SecretStr("afk_wrong_key_123")) as client:
        with pytest.raises(ApiKeyRejected) as caught:
            await client.list_webhooks()
    assert "ANYFORMAT_API_KEY" in str(caught.value) and "401" in str(caught.value)
    assert "afk_wrong_key_123" not in str(caught.value)
    assert "afk_wrong_key_123" not in repr(client)


async def test_validation_errors_carry_the_apis_detail(api_client: AnyFormatClient) -> None:
    with pytest.raises(ApiValidationError) as caught:
        await api_client.create_webhook("http://relay.example.test/h", ["extraction.exploded"])
    assert caught.value.details == [
        "body.url: URL must use HTTPS",
        "body.events: Unknown event: extraction.exploded",
    ]


async def test_the_50_subscription_limit_is_a_validation_error(
    api_client: AnyFormatClient, fake_api: FakeAnyFormat
) -> None:
    for n in range(50):
        fake_api.add(f"https://other-{n}.example.test/h")
    with pytest.raises(ApiValidationError, match="Maximum of 50 active webhooks"):
        await api_client.create_webhook(PUBLIC_URL, EVENTS)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_retryable_answers(
    api_client: AnyFormatClient, fake_api: FakeAnyFormat, status: int
) -> None:
    fake_api.fail_next(status, retry_after="7")
    with pytest.raises(ApiUnavailable) as caught:
        await api_client.list_webhooks()
    assert caught.value.retry_after == 7


async def test_a_slow_api_times_out(fake_api: FakeAnyFormat) -> None:
    fake_api.delay = 1.0
    async with AnyFormatClient(fake_api.url, SecretStr(API_KEY), total_timeout=0.2) as client:
        with pytest.raises(ApiUnavailable, match="TimeoutError"):
            await client.list_webhooks()


async def test_an_unreachable_api_is_unavailable() -> None:
    async with AnyFormatClient("http://127.0.0.1:9", SecretStr(API_KEY)) as client:
        with pytest.raises(ApiUnavailable):
            await client.list_webhooks()


def test_retry_after_is_seconds_or_an_http_date() -> None:
    now = datetime(2024, 3, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Sun, 24 Mar 2024 12:00:30 GMT", now) == 30
    assert parse_retry_after("Sun, 24 Mar 2024 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_retries_honour_retry_after_then_back_off_exponentially(
    api_client: AnyFormatClient, fake_api: FakeAnyFormat, fast_retries: list[float]
) -> None:
    fake_api.fail_next(429, times=2, retry_after="3")
    fake_api.fail_next(500, times=3)
    assert await with_retries(api_client.list_webhooks, what="list", base=0.5, cap=30) == []
    assert fast_retries[:2] == [3, 3]
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(fast_retries[2:], start=2))
    assert len(fast_retries) == 5


async def test_final_errors_are_not_retried(
    api_client: AnyFormatClient, fake_api: FakeAnyFormat, fast_retries: list[float]
) -> None:
    with pytest.raises(ApiValidationError):
        await with_retries(lambda: api_client.create_webhook("http://x", EVENTS), what="create")
    assert fast_retries == [] and len(fake_api.calls) == 1
