"""Standard Webhooks signatures (standardwebhooks.com), and which signing scheme an HR request uses. Pure, no I/O.

A Standard Webhooks sender signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 and sends
``webhook-signature: v1,<base64>`` (several space-separated entries while it rotates its secret). Secrets:

- ``whsec_<base64>``: the key is the base64-decoded part, as the standard defines it (padding optional);
- any other value: the key is the UTF-8 bytes of the value as written (a sender holding the same plain string
  signs with it as raw bytes, or is given ``whsec_`` + base64 of it, which is the same key).

Our own X-Signature scheme never interprets a secret: its key is always the UTF-8 bytes as written, ``whsec_``
prefix included, so turning on Standard Webhooks changes nothing for an existing sender.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from licensing.core.signing import SignatureRejected, check_age, check_signature

SECRET_PREFIX = "whsec_"  # noqa: S105  # the format marker the standard defines, not a secret
ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
STANDARD_HEADERS = (ID, TIMESTAMP, SIGNATURE)
OUR_HEADERS = ("x-signature", "x-timestamp")
MAX_ID_LENGTH = 256  # Svix-style ids are ~30 characters, UUIDs 36: room to spare, still a small table key
MAX_SIGNATURES = 16  # a rotating sender sends two or three; more is noise or an attempt to make us work
_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")  # printable ASCII, no spaces or control characters
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class SecretUnusable(Exception):  # a setting problem (HTTP 503), not the caller's: the message names no value
    """A configured ``whsec_`` secret whose key is not valid base64 (or is empty)."""


@dataclass(frozen=True, slots=True)
class StandardHeaders:
    """The three Standard Webhooks headers of one request."""

    webhook_id: str
    timestamp: str
    signature: str


def scheme_of(headers: Mapping[str, str]) -> Literal["standard", "ours"]:
    """Which scheme signed this request (header names lower-cased; a blank value counts as absent).

    Any ``webhook-*`` header selects the Standard scheme, which then needs all three; a request carrying both
    schemes' headers is refused rather than guessed at.
    """
    standard = [h for h in STANDARD_HEADERS if headers.get(h, "").strip()]
    if not standard:
        return "ours"
    if ours := [h for h in OUR_HEADERS if headers.get(h, "").strip()]:
        theirs = ", ".join(_title(h) for h in ours)
        raise SignatureRejected(f"both Standard Webhooks ({_title(standard[0])}) and {theirs} headers sent; use one")
    if missing := [h for h in STANDARD_HEADERS if h not in standard]:
        raise SignatureRejected(f"missing {' and '.join(missing)} header (Standard Webhooks needs all three)")
    return "standard"


def standard_headers(headers: Mapping[str, str]) -> StandardHeaders:
    """The Standard headers of a request :func:`scheme_of` called "standard"."""
    return StandardHeaders(headers[ID].strip(), headers[TIMESTAMP].strip(), headers[SIGNATURE].strip())


def verify_request(
    headers: Mapping[str, str], body: bytes, *, secrets: Sequence[str], secret_names: Sequence[str], now: float
) -> str | None:
    """Check a request under the scheme it uses (header names lower-cased), or raise SignatureRejected (401) or
    SecretUnusable (503). Returns the webhook-id, the delivery's idempotency key, for Standard; None for ours."""
    if scheme_of(headers) == "ours":
        timestamp, signature = headers.get("x-timestamp"), headers.get("x-signature")
        check_signature(secrets=secrets, timestamp=timestamp, signature=signature, body=body, now=now)
        return None
    standard = standard_headers(headers)
    keys = [signing_key(secret, setting=name) for secret, name in zip(secrets, secret_names, strict=True)]
    check_standard_signature(keys=keys, headers=standard, body=body, now=now)
    return standard.webhook_id


def signing_key(secret: str, *, setting: str = "HR_WEBHOOK_SECRET") -> bytes:
    """The HMAC key of a configured secret under the Standard scheme (see the module docstring)."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret.removeprefix(SECRET_PREFIX)
    if not _B64.fullmatch(encoded):
        raise SecretUnusable(f"{setting} starts with whsec_ but the rest is not base64")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretUnusable(f"{setting} starts with whsec_ but the rest is not base64") from None
    if not key:
        raise SecretUnusable(f"{setting} is whsec_ with an empty key")
    return key


def sign_standard(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` entry a sender holding ``key`` puts in webhook-signature."""
    return "v1," + base64.b64encode(_digest(key, webhook_id, timestamp, body)).decode()


def check_standard_signature(*, keys: Sequence[bytes], headers: StandardHeaders, body: bytes, now: float) -> None:
    """Accept the request or raise SignatureRejected: any v1 signature in the header may match any key (rotation
    on either side); other versions (``v1a``...) are ignored, as the standard asks."""
    if not _ID.fullmatch(headers.webhook_id):
        raise SignatureRejected(f"webhook-id must be 1 to {MAX_ID_LENGTH} printable ASCII characters, no spaces")
    check_age(headers.timestamp, now, header=TIMESTAMP)
    entries = headers.signature.split()
    if len(entries) > MAX_SIGNATURES:
        raise SignatureRejected(f"webhook-signature has {len(entries)} entries; at most {MAX_SIGNATURES} are read")
    given = [_decoded(entry.removeprefix("v1,")) for entry in entries if entry.startswith("v1,")]
    if not given:
        raise SignatureRejected("webhook-signature has no v1 signature (v1,<base64>); other versions are not accepted")
    expected = [_digest(key, headers.webhook_id, headers.timestamp, body) for key in keys]
    # Every pair is compared without stopping early, so timing says nothing about which key or entry matched.
    matches = [hmac.compare_digest(want, got) for want in expected for got in given]
    if not any(matches):
        raise SignatureRejected("webhook-signature does not match the webhook-id, webhook-timestamp and body")


def _digest(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def _decoded(signature: str) -> bytes:
    """A v1 entry's 32 digest bytes; anything malformed becomes bytes that match nothing (never an exception)."""
    if not _B64.fullmatch(signature):
        return b""
    try:
        return base64.b64decode(signature + "=" * (-len(signature) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _title(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-")) if header.startswith("x-") else header
