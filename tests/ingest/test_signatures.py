"""Verification against deliveries signed by the reference implementation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from multidict import CIMultiDict

from relay.ingest.signatures import HmacSha256, SignatureError, StandardWebhooks
from relay.settings import decode_standard_secret
from tests.support.signing import OTHER_SECRET, SECRET, event_body, sign

BODY = event_body(extraction_id="ex-1")
KEY = decode_standard_secret(SECRET)
OTHER_KEY = decode_standard_secret(OTHER_SECRET)
NOW = 1_711_281_750.0  # the verifier's clock in the tests at the tolerance's edges


def verify(
    headers: dict[str, str],
    body: bytes = BODY,
    keys: tuple[bytes, ...] = (KEY,),
    now: float | None = None,
) -> str:
    """Verified at ``now`` (default: the time ``sign`` stamps, however long the run)."""
    now = time.time() if now is None else now
    return StandardWebhooks(tolerance=300).verify(CIMultiDict(headers), body, keys, now)


def reason(
    headers: dict[str, str],
    body: bytes = BODY,
    keys: tuple[bytes, ...] = (KEY,),
    now: float | None = None,
) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(headers, body, keys, now)
    return caught.value.reason


def test_a_reference_signature_verifies_and_yields_the_message_id() -> None:
    assert verify(sign(BODY, msg_id="msg_abc")) == "msg_abc"


def test_svix_header_aliases_are_accepted() -> None:
    assert verify(sign(BODY, msg_id="msg_svix", prefix="svix")) == "msg_svix"


def test_header_names_are_case_insensitive() -> None:
    headers = {name.upper(): value for name, value in sign(BODY).items()}
    assert verify(headers)


def test_any_v1_signature_among_several_may_match() -> None:
    headers = sign(BODY, msg_id="m", secret=SECRET)
    other = sign(BODY, msg_id="m", secret=OTHER_SECRET, timestamp=int(headers["webhook-timestamp"]))
    headers["webhook-signature"] = " ".join(
        ["v1a,c29tZXRoaW5nZWxzZQ==", other["webhook-signature"], headers["webhook-signature"]]
    )
    assert verify(headers) == "m"


def test_several_active_secrets_are_all_accepted() -> None:
    assert verify(sign(BODY, secret=OTHER_SECRET), keys=(KEY, OTHER_KEY))
    assert reason(sign(BODY, secret=OTHER_SECRET), keys=(KEY,)) == "invalid_signature"


def test_the_signature_covers_the_raw_bytes() -> None:
    headers = sign(BODY)
    assert reason(headers, body=BODY + b" ") == "invalid_signature"
    assert reason(headers, body=BODY.replace(b": ", b":")) == "invalid_signature"


def test_the_signature_covers_the_id_and_the_timestamp() -> None:
    headers = sign(BODY, msg_id="msg_1")
    assert reason({**headers, "webhook-id": "msg_2"}) == "invalid_signature"
    stamp = str(int(headers["webhook-timestamp"]) + 1)
    assert reason({**headers, "webhook-timestamp": stamp}) == "invalid_signature"


@pytest.mark.parametrize("offset", [-301, 301, -86400, 86400])
def test_timestamps_outside_the_tolerance_are_refused_both_ways(offset: int) -> None:
    assert reason(sign(BODY, timestamp=int(NOW) + offset), now=NOW) == "timestamp_out_of_tolerance"


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_timestamps_inside_the_tolerance_are_accepted(offset: int) -> None:
    assert verify(sign(BODY, timestamp=int(NOW) + offset), now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing: str) -> None:
    headers = sign(BODY)
    del headers[missing]
    assert reason(headers) == "missing_signature"


def test_no_signature_headers_at_all_is_refused() -> None:
    assert reason({}) == "missing_signature"


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("webhook-timestamp", "soon", "malformed_headers"),
        ("webhook-timestamp", "-5", "malformed_headers"),
        ("webhook-timestamp", "1e9", "malformed_headers"),
        ("webhook-timestamp", "99999999999999999999", "malformed_headers"),
        ("webhook-id", "", "malformed_headers"),
        ("webhook-id", "x" * 257, "malformed_headers"),
        ("webhook-signature", "v1,not base64!", "malformed_signature"),
        ("webhook-signature", "v1", "malformed_signature"),
        ("webhook-signature", "", "malformed_signature"),
        ("webhook-signature", "v2,c2ln", "malformed_signature"),
        ("webhook-signature", "v1,c2lnbmF0dXJl", "invalid_signature"),
    ],
)
def test_malformed_headers_are_refused_not_crashed_on(
    header: str, value: str, expected: str
) -> None:
    assert reason({**sign(BODY), header: value}) == expected


def test_a_secret_without_prefix_or_padding_is_the_same_key() -> None:
    bare = SECRET.removeprefix("whsec_").rstrip("=")
    assert decode_standard_secret(bare) == KEY
    with pytest.raises(ValueError):
        decode_standard_secret("whsec_not*base64")


# --- hmac-sha256 -----------------------------------------------------------------------

HMAC_SECRET = "plain-shared-secret"
DIGEST = hmac.new(HMAC_SECRET.encode(), BODY, hashlib.sha256).digest()


def hmac_verify(value: str | None, header: str = "X-Signature") -> str:
    headers = CIMultiDict({} if value is None else {header: value})
    return HmacSha256("X-Signature").verify(headers, BODY, (HMAC_SECRET.encode(),), NOW)


@pytest.mark.parametrize(
    "value",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        "sha256=" + DIGEST.hex(),
        "SHA256=" + DIGEST.hex(),
        base64.b64encode(DIGEST).decode(),
        "sha256=" + base64.b64encode(DIGEST).decode(),
    ],
)
def test_hmac_accepts_hex_or_base64_with_optional_prefix(value: str) -> None:
    assert hmac_verify(value) == "sha256:" + hashlib.sha256(BODY).hexdigest()


def test_hmac_header_name_is_configurable_and_case_insensitive() -> None:
    verifier = HmacSha256("X-Hub-Signature-256")
    headers = CIMultiDict({"x-hub-signature-256": "sha256=" + DIGEST.hex()})
    assert verifier.verify(headers, BODY, (HMAC_SECRET.encode(),), NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "missing_signature"),
        ("zz" * 32, "malformed_signature"),
        ("sha256=", "malformed_signature"),
        (base64.b64encode(b"short").decode(), "malformed_signature"),
        ("00" * 32, "invalid_signature"),
    ],
)
def test_hmac_refusals(value: str | None, expected: str) -> None:
    with pytest.raises(SignatureError) as caught:
        hmac_verify(value)
    assert caught.value.reason == expected
