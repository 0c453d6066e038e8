"""Signature schemes. Each turns (headers, raw body, keys) into a message id or a rejection.

Standard Webhooks (``webhook-*`` headers, ``svix-*`` aliases) is the default; the plain
``hmac-sha256`` scheme exists because the provider has not published which one it uses.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from relay.settings import Settings, decode_standard_secret

MAX_MESSAGE_ID_LENGTH = 256
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@functools.lru_cache(maxsize=16)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 already keyed with ``key``: copying it skips the key set-up that
    ``hmac.digest`` repeats on every call."""
    return hmac.new(key, digestmod=hashlib.sha256)


class SignatureError(Exception):
    """A delivery that must be refused with 401; ``reason`` is a metrics label and log field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Verifier(Protocol):
    def key_for(self, secret: str) -> bytes:
        """The HMAC key of a configured secret; ``ValueError`` when it is not usable."""

    def verify(
        self, headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], now: float
    ) -> str:
        """The delivery's message id, or ``SignatureError``."""


class StandardWebhooks:
    """https://www.standardwebhooks.com/ — signs ``{id}.{timestamp}.{body}``."""

    FAMILIES = (
        ("webhook-id", "webhook-timestamp", "webhook-signature"),
        ("svix-id", "svix-timestamp", "svix-signature"),
    )

    def __init__(self, tolerance: int) -> None:
        self.tolerance = tolerance

    def key_for(self, secret: str) -> bytes:
        return decode_standard_secret(secret)

    def verify(
        self, headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], now: float
    ) -> str:
        message_id, timestamp, signature_header = self._headers(headers)
        if not (0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH and message_id.isprintable()):
            raise SignatureError("malformed_headers")
        if not (len(timestamp) <= 12 and timestamp.isascii() and timestamp.isdigit()):
            raise SignatureError("malformed_headers")
        if abs(now - int(timestamp)) > self.tolerance:
            raise SignatureError("timestamp_out_of_tolerance")

        offered = self._v1_signatures(signature_header)
        prefix = f"{message_id}.{timestamp}.".encode()
        for key in keys:
            mac = _keyed(key).copy()
            mac.update(prefix)
            mac.update(body)
            expected = mac.digest()
            # compare_digest against every offered value: no early exit that leaks which.
            if any(hmac.compare_digest(expected, candidate) for candidate in offered):
                return message_id
        raise SignatureError("invalid_signature")

    def _headers(self, headers: Mapping[str, str]) -> tuple[str, str, str]:
        for id_name, timestamp_name, signature_name in self.FAMILIES:
            message_id = headers.get(id_name)
            timestamp = headers.get(timestamp_name)
            signature = headers.get(signature_name)
            if message_id is None and timestamp is None and signature is None:
                continue  # not this family: try the next
            if message_id is None or timestamp is None or signature is None:
                raise SignatureError("missing_signature")
            return message_id, timestamp.strip(), signature
        raise SignatureError("missing_signature")

    @staticmethod
    def _v1_signatures(header: str) -> list[bytes]:
        """The decodable ``v1`` items. Other versions and malformed items are skipped, as
        the reference libraries do: one bad item beside a good one is no reason to refuse."""
        signatures = []
        for item in header.split():
            version, sep, encoded = item.partition(",")
            if not sep or version != "v1":
                continue  # malformed, or another version (v1a: asymmetric): not ours
            try:
                decoded = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            if decoded:
                signatures.append(decoded)
        if not signatures:
            raise SignatureError("malformed_signature")
        return signatures


class HmacSha256:
    """HMAC-SHA256 of the raw body in one header: hex or base64, optionally ``sha256=``.

    The scheme signs no message id, so the id is the body's SHA-256: re-deliveries of the
    same bytes dedupe, and a forged id header cannot smuggle a second copy in.
    """

    def __init__(self, header: str) -> None:
        self.header = header

    def key_for(self, secret: str) -> bytes:
        return secret.encode()

    def verify(
        self, headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], now: float
    ) -> str:
        value = headers.get(self.header)
        if value is None:
            raise SignatureError("missing_signature")
        offered = self._decode(value.strip())
        for key in keys:
            if hmac.compare_digest(hmac.digest(key, body, "sha256"), offered):
                return "sha256:" + hashlib.sha256(body).hexdigest()
        raise SignatureError("invalid_signature")

    @staticmethod
    def _decode(value: str) -> bytes:
        if value[:7].lower() == "sha256=":
            value = value[7:]
        if _HEX_SHA256.fullmatch(value):
            return bytes.fromhex(value)
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("malformed_signature") from None
        if len(decoded) != hashlib.sha256().digest_size:
            raise SignatureError("malformed_signature")
        return decoded


def verifier_for(settings: Settings) -> Verifier:
    if settings.signature_scheme == "hmac-sha256":
        return HmacSha256(settings.hmac_header)
    return StandardWebhooks(settings.signature_tolerance)
