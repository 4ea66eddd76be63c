"""HR webhook signatures."""

import pytest

from licensing.core.signing import SignatureRejected, check_signature, sign

NOW = 1_800_000_000
BODY = b'{"eventId":"e1"}'


def check(signature: str | None, timestamp: str | None = str(NOW), *, secrets: tuple[str, ...] = ("s1",)) -> None:
    check_signature(secrets=secrets, timestamp=timestamp, signature=signature, body=BODY, now=NOW)


def test_hex_and_prefixed_signatures_are_accepted() -> None:
    """Plain hex and sha256=hex (any case) both verify."""
    good = sign("s1", str(NOW), BODY)
    check(good)
    check(f"sha256={good}")
    check(good.upper())


def test_either_of_two_secrets_verifies_during_rotation() -> None:
    """The previous secret keeps working while the HR system switches."""
    check(sign("old", str(NOW), BODY), secrets=("new", "old"))
    check(sign("new", str(NOW), BODY), secrets=("new", "old"))


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        (None, str(NOW), "missing X-Signature header"),
        ("ab" * 32, None, "missing X-Timestamp header"),
        (None, None, "missing X-Timestamp and X-Signature header"),
        ("ab" * 32, "yesterday", "Unix time"),
        ("zz", str(NOW), "64 hex characters"),
        ("ab" * 32, str(NOW), "does not match"),
    ],
)
def test_bad_signatures_say_why(signature: str | None, timestamp: str | None, reason: str) -> None:
    """Each refusal names its cause."""
    with pytest.raises(SignatureRejected, match=reason):
        check(signature, timestamp)


def test_stale_and_future_timestamps_are_refused_even_when_signed() -> None:
    """A valid signature over an old or future timestamp is still refused (replay, bad clock)."""
    old = str(NOW - 301)
    with pytest.raises(SignatureRejected, match="301 s old"):
        check(sign("s1", old, BODY), old)
    future = str(NOW + 60)
    with pytest.raises(SignatureRejected, match="in the future"):
        check(sign("s1", future, BODY), future)
    edge = str(NOW - 300)
    check(sign("s1", edge, BODY), edge)


def test_signature_covers_the_body() -> None:
    """Changing one byte of the body breaks the signature."""
    good = sign("s1", str(NOW), BODY)
    with pytest.raises(SignatureRejected):
        check_signature(secrets=("s1",), timestamp=str(NOW), signature=good, body=BODY + b" ", now=NOW)


def test_no_configured_secret_accepts_nothing() -> None:
    """With no secret set, no signature can match."""
    with pytest.raises(SignatureRejected, match="does not match"):
        check(sign("", str(NOW), BODY), secrets=())
