"""HMAC-SHA256 webhook signatures: ``hex(HMAC(secret, timestamp + "." + raw body))``. Pure, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

MAX_AGE_SECONDS = 300  # older than five minutes is a replay, or a clock too wrong to trust
MAX_CLOCK_SKEW_SECONDS = 5  # "from the future" beyond ordinary NTP drift is refused too


class SignatureRejected(Exception):  # reads as what happened, like the HTTP 401 it becomes
    """Why a request's signature was not accepted (safe to return to the caller: no secret material)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The hex signature a sender puts in X-Signature (optionally prefixed ``sha256=``)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check_signature(
    *, secrets: Sequence[str], timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Accept the request or raise SignatureRejected. Any configured secret may match (rotation)."""
    if not timestamp or not signature:
        missing = " and ".join(h for h, v in (("X-Timestamp", timestamp), ("X-Signature", signature)) if not v)
        raise SignatureRejected(f"missing {missing} header")
    check_age(timestamp, now, header="X-Timestamp")
    given = signature.strip().removeprefix("sha256=").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", given):
        raise SignatureRejected("X-Signature must be 64 hex characters, optionally prefixed sha256=")
    # Compare against every secret without stopping early, so timing says nothing about which one matched.
    matches = [hmac.compare_digest(sign(secret, timestamp, body), given) for secret in secrets]
    if not any(matches):
        raise SignatureRejected("X-Signature does not match the body and timestamp")


def check_age(timestamp: str, now: float, *, header: str) -> None:
    """Refuse a timestamp header that is not Unix seconds, is older than MAX_AGE_SECONDS or is from the future."""
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):  # ASCII digits only: str.isdigit() also accepts "²"
        raise SignatureRejected(f"{header} must be Unix time in whole seconds")
    age = now - int(timestamp)
    if age > MAX_AGE_SECONDS:
        raise SignatureRejected(f"{header} is {int(age)} s old; requests older than {MAX_AGE_SECONDS} s are refused")
    if age < -MAX_CLOCK_SKEW_SECONDS:
        raise SignatureRejected(f"{header} is in the future; check the sender's clock")
