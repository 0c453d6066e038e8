"""The v3 lists over real sockets: keyset pages of 100, Retry-After, errors, no key leaks."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from relay.reconcile.api import ATTEMPTS, RunsApi
from relay.registration.client import ApiKeyRejected, ApiUnavailable, ApiValidationError
from tests.reconcile.conftest import Organisation
from tests.support.fake_anyformat import FakeAnyFormat


async def test_every_page_is_followed_with_limit_100_newest_first(
    runs_api: RunsApi, fake_api: FakeAnyFormat, org: Organisation
) -> None:
    workflows = [org.workflow() for _ in range(203)]
    workflow = workflows[0]
    runs = [org.finished(workflow, "processed", seconds_ago=i) for i in range(250)]

    assert [w async for w in runs_api.workflow_ids()] == workflows[::-1]
    pages = [page async for page in runs_api.run_pages(workflow)]
    assert [len(page) for page in pages] == [100, 100, 50]
    assert [r.id for page in pages for r in page] == runs  # created newest first
    queries = [c for c in fake_api.v3_calls() if c.path.endswith("/runs/")]
    assert len(queries) == 3 and runs_api.calls == 3 + 3


async def test_429_waits_as_long_as_retry_after_says_then_goes_on(
    runs_api: RunsApi, fake_api: FakeAnyFormat, org: Organisation, recorded_backoff: list[float]
) -> None:
    workflow = org.workflow()
    fake_api.fail_v3_next(429, times=2, retry_after="7")
    assert [w async for w in runs_api.workflow_ids()] == [workflow]
    assert recorded_backoff == [7.0, 7.0] and runs_api.calls == 3


async def test_server_errors_are_retried_a_bounded_number_of_times(
    runs_api: RunsApi, fake_api: FakeAnyFormat, org: Organisation, recorded_backoff: list[float]
) -> None:
    org.workflow()
    fake_api.fail_v3_next(503, times=ATTEMPTS)
    with pytest.raises(ApiUnavailable, match="HTTP 503"):
        [w async for w in runs_api.workflow_ids()]
    assert runs_api.calls == ATTEMPTS and len(recorded_backoff) == ATTEMPTS - 1
    assert [w async for w in runs_api.workflow_ids()]  # and the next walk works


async def test_a_rejected_key_is_final_and_never_shown(fake_api: FakeAnyFormat) -> None:
    key = "afk_revoked_5566778899"
    async with RunsApi(fake_api.url, SecretStr(key)) as api:
        with pytest.raises(ApiKeyRejected) as raised:
            [w async for w in api.workflow_ids()]
    assert api.calls == 1 and key not in str(raised.value) and key not in repr(api)


async def test_a_missing_workflow_is_an_error_not_an_empty_list(
    runs_api: RunsApi, fake_api: FakeAnyFormat
) -> None:
    with pytest.raises(ApiValidationError, match="HTTP 404"):
        [page async for page in runs_api.run_pages("gone")]
