"""Queue message validation."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from licensing.core.errors import InvalidRequest
from licensing.core.messages import ISSUED_AT_SKEW, MAX_MESSAGE_BYTES, OnboardRequest, parse_message, peek_identity

GOOD = {"user": "ada@contoso.example", "source": "hr", "requestId": "r1", "attributes": {"department": "Sales"}}


def test_valid_request_parses_with_camel_case_aliases() -> None:
    """The documented JSON shape becomes an OnboardRequest."""
    req = parse_message(json.dumps({**GOOD, "usageLocation": "GB"}), OnboardRequest)
    assert (req.user, req.source, req.request_id, req.usage_location) == ("ada@contoso.example", "hr", "r1", "GB")


def test_the_hr_event_kind_is_carried_and_only_hr_kinds_are_accepted() -> None:
    """hrEvent (set by the HR webhook) is hire, update or terminate; absent in older messages."""
    assert parse_message(json.dumps(GOOD), OnboardRequest).hr_event is None
    update = parse_message(json.dumps({**GOOD, "hrEvent": "update"}), OnboardRequest)
    assert update.model_dump(mode="json", by_alias=True)["hrEvent"] == "update"
    with pytest.raises(InvalidRequest, match="hrEvent"):
        parse_message(json.dumps({**GOOD, "hrEvent": "promote"}), OnboardRequest)


def test_each_problem_is_named_with_its_field() -> None:
    """Missing user, bad source and bad usage location are all reported."""
    with pytest.raises(InvalidRequest) as caught:
        parse_message(json.dumps({"source": "fax", "requestId": "r", "usageLocation": "usa"}), OnboardRequest)
    text = caught.value.message
    assert "user: Field required" in text
    assert "source:" in text
    assert "usageLocation:" in text


def test_malformed_json_and_non_objects_are_rejected() -> None:
    """Not JSON, or JSON that is not an object."""
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_message("{user:", OnboardRequest)
    with pytest.raises(InvalidRequest, match="must be a JSON object, not list"):
        parse_message("[1]", OnboardRequest)


def test_oversize_message_is_rejected_before_parsing() -> None:
    """A message over the limit is refused with its size."""
    body = json.dumps({**GOOD, "attributes": {"department": "x" * MAX_MESSAGE_BYTES}})
    with pytest.raises(InvalidRequest, match="the limit is 32,768 bytes"):
        parse_message(body, OnboardRequest)


def test_unknown_fields_are_refused() -> None:
    """A typo such as usagelocation is an error rather than silently ignored."""
    with pytest.raises(InvalidRequest, match="usagelocation: Extra inputs are not permitted"):
        parse_message(json.dumps({**GOOD, "usagelocation": "US"}), OnboardRequest)


def test_peek_identity_finds_who_even_in_invalid_messages() -> None:
    """Rejected messages still say whose they were."""
    assert peek_identity(json.dumps({"user": "bob@x", "requestId": "r9", "source": "?"})) == ("bob@x", "r9")
    assert peek_identity(json.dumps({"userId": "id-1"})) == ("id-1", None)
    assert peek_identity("garbage") == (None, None)


DEEP = '{"user": ' + "[" * 100_000 + "]" * 100_000 + "}"
DEEP_SMALL = '{"user": ' + "[" * 5_000 + "]" * 5_000 + ', "source": "hr", "requestId": "r"}'  # under the size limit
LONG_NUMBER = '{"user": "x@contoso.com", "requestId": "r7", "attempt": ' + "9" * 5000 + "}"


@pytest.mark.parametrize(
    ("body", "why"),
    [(DEEP_SMALL, "nested too deeply"), (LONG_NUMBER, "integer string conversion"), (b"\xff\xfe\x00", "JSON")],
    ids=["nested", "long-number", "not-utf8"],
)
def test_what_json_loads_cannot_read_is_an_invalid_request(body: str | bytes, why: str) -> None:
    """RecursionError and the 4,300-digit ValueError become InvalidRequest naming the problem, never escape."""
    with pytest.raises(InvalidRequest, match=why):
        parse_message(body, OnboardRequest)


def test_peek_identity_never_raises_on_what_json_cannot_read() -> None:
    """Nested 100,000 deep or a 5,000-digit number: nobody, no request id, no exception."""
    assert peek_identity(DEEP) == (None, None)
    assert peek_identity(DEEP_SMALL) == (None, None)
    assert peek_identity(LONG_NUMBER) == (None, None)


def test_issued_at_in_the_future_is_refused_with_the_allowed_skew() -> None:
    """An HR request stamped tomorrow would outrank every later leaver: refused, naming issuedAt and 5 minutes."""
    now = datetime.now(UTC)
    tomorrow = {**GOOD, "issuedAt": (now + timedelta(days=1)).isoformat()}
    with pytest.raises(InvalidRequest, match=r"issuedAt: .*in the future; at most 5 minutes"):
        parse_message(json.dumps(tomorrow), OnboardRequest)
    for fine in (now + ISSUED_AT_SKEW - timedelta(seconds=30), now - timedelta(days=30)):
        assert parse_message(json.dumps({**GOOD, "issuedAt": fine.isoformat()}), OnboardRequest).issued_at == fine
