"""Queue message validation."""

import json

import pytest

from licensing.core.errors import InvalidRequest
from licensing.core.messages import MAX_MESSAGE_BYTES, OnboardRequest, parse_message, peek_identity

GOOD = {"user": "ada@contoso.example", "source": "hr", "requestId": "r1", "attributes": {"department": "Sales"}}


def test_valid_request_parses_with_camel_case_aliases() -> None:
    """The documented JSON shape becomes an OnboardRequest."""
    req = parse_message(json.dumps({**GOOD, "usageLocation": "GB"}), OnboardRequest)
    assert (req.user, req.source, req.request_id, req.usage_location) == ("ada@contoso.example", "hr", "r1", "GB")


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
