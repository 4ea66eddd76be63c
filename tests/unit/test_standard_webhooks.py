"""Standard Webhooks signatures, signed by the `standardwebhooks` package as a real sender would."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from licensing.core.signing import SignatureRejected, sign
from licensing.core.standard_webhooks import SecretUnusable, sign_standard, signing_key, verify_request
from licensing.dev import post_hire

NOW = 1_800_000_000
BODY = b'{"eventId":"e1","type":"hire"}'
CURRENT = "whsec_" + base64.b64encode(b"current-key-0123456789abcdef").decode()
PREVIOUS = "whsec_" + base64.b64encode(b"previous-key-0123456789abcdef").decode()
NAMES = ("HR_WEBHOOK_SECRET", "HR_WEBHOOK_SECRET_PREVIOUS")


def library_signature(secret: str | bytes, *, msg_id: str = "msg_1", at: int = NOW, body: bytes = BODY) -> str:
    """What a sender using standardwebhooks puts in webhook-signature."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, UTC), body.decode())


def headers(signature: str, *, msg_id: str = "msg_1", at: int = NOW) -> dict[str, str]:
    """The three Standard headers, lower-cased as the service hands them over."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}


def verify(sent: dict[str, str], *, body: bytes = BODY, secrets: tuple[str, ...] = (CURRENT, PREVIOUS)) -> str | None:
    """verify_request with the test clock and both settings named."""
    return verify_request(sent, body, secrets=secrets, secret_names=NAMES[: len(secrets)], now=NOW)


def test_a_library_signed_request_verifies_and_yields_its_webhook_id() -> None:
    """A whsec_ secret, signed by the reference package: accepted; the webhook-id comes back as the dedupe key."""
    assert verify(headers(library_signature(CURRENT, msg_id="msg_2KWPBgLl"), msg_id="msg_2KWPBgLl")) == "msg_2KWPBgLl"


def test_rotation_header_with_two_signatures_matches_the_previous_secret_on_the_second() -> None:
    """The sender rotates: a signature by a key we do not know, then one by our previous secret -> accepted."""
    unknown = "whsec_" + base64.b64encode(b"next-key-nobody-configured-yet").decode()
    both = f"{library_signature(unknown)} {library_signature(PREVIOUS)}"
    assert verify(headers(both)) == "msg_1"


def test_a_plain_secret_is_its_utf8_bytes_and_whsec_of_its_base64_is_the_same_key() -> None:
    """HR_WEBHOOK_SECRET without whsec_: a sender holding the raw bytes, or whsec_+base64 of them, verifies."""
    plain = "plain-shared-secret"
    assert verify(headers(library_signature(plain.encode())), secrets=(plain,)) == "msg_1"
    same = "whsec_" + base64.b64encode(plain.encode()).decode()
    assert verify(headers(library_signature(same)), secrets=(plain,)) == "msg_1"


def test_our_own_scheme_uses_a_whsec_secret_verbatim() -> None:
    """X-Signature keys on the setting as written, whsec_ included: existing senders are unaffected."""
    sent = {"x-timestamp": str(NOW), "x-signature": sign(CURRENT, str(NOW), BODY)}
    assert verify(sent) is None


def test_unpadded_whsec_keys_are_accepted() -> None:
    """Some senders strip base64 padding from the secret; the key is the same."""
    unpadded = CURRENT.rstrip("=")
    assert unpadded != CURRENT
    assert signing_key(unpadded) == signing_key(CURRENT)


def test_our_signer_agrees_with_the_reference_package() -> None:
    """sign_standard (used by the dev helper) produces exactly the package's v1 entry."""
    assert sign_standard(signing_key(CURRENT), "msg_1", str(NOW), BODY) == library_signature(CURRENT)


def test_malformed_entries_are_skipped_and_a_good_one_still_matches() -> None:
    """Garbage, a comma-less entry and non-base64 next to a good signature: the good one decides."""
    noisy = f"garbage v1,!!notbase64!! v1, v2,abc= {library_signature(CURRENT)}"
    assert verify(headers(noisy)) == "msg_1"


@pytest.mark.parametrize(
    ("sent", "body", "reason"),
    [
        (headers(library_signature("whsec_" + base64.b64encode(b"wrong").decode())), BODY, "does not match"),
        (headers(library_signature(CURRENT, at=NOW - 301), at=NOW - 301), BODY, "301 s old"),
        (headers(library_signature(CURRENT, at=NOW + 60), at=NOW + 60), BODY, "in the future"),
        (headers(library_signature(CURRENT)), BODY.replace(b"hire", b"fire"), "does not match"),
        (headers(library_signature(CURRENT).replace("v1,", "v1a,")), BODY, "no v1 signature"),
        (headers(library_signature(CURRENT), msg_id="msg_2"), BODY, "does not match"),
        (headers(library_signature(CURRENT), at=NOW + 1), BODY, "does not match"),
        ({"webhook-id": "m", "webhook-timestamp": str(NOW)}, BODY, "missing webhook-signature header"),
        ({"webhook-signature": "v1,AAAA"}, BODY, "missing webhook-id and webhook-timestamp header"),
        ({"webhook-id": "m", "webhook-timestamp": " ", "webhook-signature": "v1,AAAA"}, BODY, "webhook-timestamp"),
        (headers("v1,AAAA") | {"x-signature": "ab" * 32}, BODY, "X-Signature headers sent; use one"),
        (headers("v1,AAAA", at=0) | {"webhook-timestamp": "17e8"}, BODY, "Unix time in whole seconds"),
        (headers(" ".join(["v1,AAAA"] * 17)), BODY, "at most 16"),
    ],
    ids=[
        "wrong-secret",
        "stale",
        "future",
        "tampered-body",
        "v1a-only",
        "other-webhook-id",
        "other-timestamp",
        "no-signature",
        "only-signature",
        "blank-timestamp",
        "both-schemes",
        "timestamp-not-digits",
        "too-many-signatures",
    ],
)
def test_refusals_name_the_problem(sent: dict[str, str], body: bytes, reason: str) -> None:
    """Each refusal is a SignatureRejected (a 401) whose message says what is wrong."""
    with pytest.raises(SignatureRejected, match=reason):
        verify(sent, body=body)


@pytest.mark.parametrize(
    "msg_id",
    ["with space", "tab\there", "new\nline", "caf\u00e9", "x" * 257, "\u202eevil", "null\x00byte"],
    ids=["space", "tab", "newline", "non-ascii", "too-long", "bidi-override", "nul"],
)
def test_hostile_webhook_ids_are_refused_before_they_become_a_table_key(msg_id: str) -> None:
    """webhook-id becomes a row key: only 1-256 printable ASCII characters are accepted, even when signed."""
    with pytest.raises(SignatureRejected, match="webhook-id must be 1 to 256 printable ASCII"):
        verify(headers(sign_standard(signing_key(CURRENT), msg_id, str(NOW), BODY), msg_id=msg_id))


def test_the_longest_allowed_webhook_id_verifies() -> None:
    """256 printable characters, including the punctuation UUIDs and prefixed ids use, are fine."""
    msg_id = ("msg_0a1b-2c3d.4e5f:" * 14)[:256]
    assert verify(headers(library_signature(CURRENT, msg_id=msg_id), msg_id=msg_id)) == msg_id


@pytest.mark.parametrize(
    ("broken", "reason"),
    [("whsec_s3cret marker!", "not base64"), ("whsec_@@marker@@", "not base64"), ("whsec_", "empty key")],
    ids=["space", "symbols", "empty"],
)
def test_a_whsec_secret_that_is_not_base64_is_a_named_setting_error_without_its_value(broken: str, reason: str) -> None:
    """The broken setting is named (here the previous one) with what is wrong; its value never appears."""
    with pytest.raises(SecretUnusable, match=f"HR_WEBHOOK_SECRET_PREVIOUS .*{reason}") as caught:
        verify(headers(library_signature(CURRENT)), secrets=(CURRENT, broken))
    assert "marker" not in str(caught.value)


def test_a_broken_whsec_secret_does_not_affect_our_own_scheme() -> None:
    """X-Signature never decodes secrets, so it keeps working while the Standard setting is fixed."""
    broken = "whsec_not base64!"
    sent = {"x-timestamp": str(NOW), "x-signature": sign(broken, str(NOW), BODY)}
    assert verify(sent, secrets=(broken,)) is None


def test_no_configured_secret_accepts_no_standard_signature() -> None:
    """With no secret, nothing can match."""
    with pytest.raises(SignatureRejected, match="does not match"):
        verify(headers(library_signature(CURRENT)), secrets=())


def test_the_dev_helpers_standard_headers_pass_the_reference_verifier() -> None:
    """post_hire --standard signs what standardwebhooks.Webhook.verify accepts, for whsec_ and plain secrets."""
    now = datetime.now(UTC).timestamp()  # the package verifies against the real clock
    for secret, sender in ((CURRENT, Webhook(CURRENT)), ("plain-secret", Webhook(b"plain-secret"))):
        sent = post_hire.standard_headers(secret, BODY, now=now, webhook_id="msg_dev")
        assert sender.verify(BODY, sent) == {"eventId": "e1", "type": "hire"}


def test_the_dev_helper_refuses_a_broken_whsec_secret_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """post_hire --standard with a whsec_ secret that is not base64: a one-line error, exit 2, nothing sent."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HR_WEBHOOK_SECRET", "whsec_brokenmarker!!")
        assert post_hire.main(["a@contoso.onmicrosoft.com", "--standard", "--url", "http://127.0.0.1:9/api"]) == 2
    err = capsys.readouterr().err
    assert "not base64" in err
    assert "brokenmarker" not in err


HEADER_NAMES = st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "x-signature", "x-timestamp"])
HEADER_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["v1,", "v1,====", "v1a,AAAA", "v1,AAAA v1", ",", "²", str(NOW), "msg_1", " ", "\x00"]),
    st.lists(st.sampled_from(["v1,", "v2,", "AAAA", "=", " ", ","]), max_size=8).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(sent=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5), body=st.binary(max_size=40))
def test_arbitrary_headers_are_a_refusal_never_a_crash(sent: dict[str, str], body: bytes) -> None:
    """Any mix of both schemes' headers with any values: SignatureRejected with a reason, nothing else escapes."""
    with pytest.raises(SignatureRejected) as refused:
        verify(sent, body=body, secrets=(CURRENT, "plain-secret"))
    assert str(refused.value)
