"""Malformed items in ``webhook-signature``: skipped as the reference library skips them.

Each case is checked against our verifier AND the ``standardwebhooks`` reference library,
so that "accepted" and "refused" mean what a sender using the reference would expect.
"""

from __future__ import annotations

import time

import pytest
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.ingest.signatures import SignatureError, StandardWebhooks
from relay.settings import decode_standard_secret
from tests.support.signing import SECRET, event_body, sign

BODY = event_body(extraction_id="ex-items")
KEY = decode_standard_secret(SECRET)

MALFORMED = ["garbage", "v1,", "v1,not*base64", "v1,c2ln=bad", ",", "v1", "v2,c2ln"]


def ours(headers: dict[str, str]) -> str | None:
    """The message id our verifier yields, or None when it refuses."""
    try:
        return StandardWebhooks(tolerance=300).verify(
            CIMultiDict(headers), BODY, [KEY], time.time()
        )
    except SignatureError:
        return None


def reference_accepts(headers: dict[str, str]) -> bool:
    try:
        Webhook(SECRET).verify(BODY.decode(), headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.mark.parametrize("junk", MALFORMED)
@pytest.mark.parametrize("valid_first", [True, False])
def test_a_malformed_item_beside_a_valid_signature_is_skipped(junk: str, valid_first: bool) -> None:
    headers = sign(BODY, msg_id="msg_items")
    valid = headers["webhook-signature"]
    headers["webhook-signature"] = f"{valid} {junk}" if valid_first else f"{junk} {valid}"
    assert reference_accepts(headers)
    assert ours(headers) == "msg_items"


@pytest.mark.parametrize("junk", MALFORMED)
def test_malformed_items_alone_are_still_refused(junk: str) -> None:
    headers = sign(BODY)
    headers["webhook-signature"] = f"{junk} {junk}"
    assert not reference_accepts(headers)
    assert ours(headers) is None


def test_a_wrong_signature_beside_malformed_items_is_refused() -> None:
    headers = sign(BODY)
    headers["webhook-signature"] = "garbage v1, v1,c2lnbmF0dXJl"
    assert not reference_accepts(headers)
    assert ours(headers) is None
