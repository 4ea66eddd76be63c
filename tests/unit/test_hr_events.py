"""HR event payloads: validation, the published schema, and what each event becomes."""

import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from licensing.core.hr_events import MAX_EVENTS, HrEvent, PayloadInvalid, dispatch_for, json_schema, parse_events

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
HIRE = {
    "eventId": "evt-1", "type": "hire", "employeeId": "E100", "userPrincipalName": "ada@contoso.com",
    "department": "Sales", "employeeType": "Employee", "country": "GB", "startDate": "2026-12-01",
}  # fmt: skip


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_one_event_or_a_batch_is_accepted() -> None:
    """A single object and {"events": [...]} both parse."""
    assert [e.event_id for e in parse_events(body(HIRE))] == ["evt-1"]
    batch = {"events": [HIRE, {**HIRE, "eventId": "evt-2", "type": "update"}]}
    assert [e.type for e in parse_events(body(batch))] == ["hire", "update"]


def test_problems_are_listed_with_their_location() -> None:
    """Every field error says where it is, batch index included."""
    bad = {"events": [HIRE, {**HIRE, "eventId": "evt-2", "country": "United Kingdom", "type": "fired"}]}
    with pytest.raises(PayloadInvalid) as caught:
        parse_events(body(bad))
    locations = {p["loc"] for p in caught.value.problems}
    assert {"events[1].country", "events[1].type"} <= locations


def test_batches_are_bounded_and_ids_unique() -> None:
    """Over 500 events, or a repeated eventId inside one batch, is refused."""
    many = {"events": [{**HIRE, "eventId": f"e{i}"} for i in range(MAX_EVENTS + 1)]}
    with pytest.raises(PayloadInvalid, match="problem"):
        parse_events(body(many))
    with pytest.raises(PayloadInvalid) as caught:
        parse_events(body({"events": [HIRE, HIRE]}))
    assert "eventId repeated within the batch: evt-1" in caught.value.problems[0]["msg"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'"text"', b"\xff\xfe"])
def test_non_objects_are_invalid_payloads(raw: bytes) -> None:
    """Anything but a JSON object is a 400-style problem at (body)."""
    with pytest.raises(PayloadInvalid) as caught:
        parse_events(raw)
    assert caught.value.problems[0]["loc"] == "(body)"


def test_end_date_before_start_date_is_refused() -> None:
    """Dates must be in order."""
    with pytest.raises(PayloadInvalid, match="problem"):
        parse_events(body({**HIRE, "endDate": "2026-11-01"}))


def test_hire_becomes_an_assign_request_effective_on_its_start_date() -> None:
    """Attributes, usage location from country, and the start date (less the lead time)."""
    event = HrEvent.model_validate(HIRE)
    plan = dispatch_for(event, now=NOW, timezone=UTC_ZONE, hire_lead_hours=12, leaver_grace_days=0)
    attributes = {"department": "Sales", "employeeType": "Employee", "country": "GB"}
    who = {"user": "ada@contoso.com", "source": "hr", "requestId": "hr-evt-1", "issuedAt": NOW.isoformat()}
    assert plan.message == {**who, "hrEvent": "hire", "attributes": attributes, "usageLocation": "GB"}
    assert plan.effective == datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_dates_are_days_in_the_hr_time_zone() -> None:
    """A Berlin hire starts at 00:00 Berlin time (23:00 UTC the day before in winter)."""
    event = HrEvent.model_validate(HIRE)
    plan = dispatch_for(event, now=NOW, timezone=ZoneInfo("Europe/Berlin"), hire_lead_hours=0, leaver_grace_days=0)
    assert plan.effective == datetime(2026, 11, 30, 23, tzinfo=UTC)


def test_mover_is_applied_now() -> None:
    """An update re-evaluates the policy immediately."""
    event = HrEvent.model_validate({**HIRE, "type": "update", "department": "Executive"})
    plan = dispatch_for(event, now=NOW, timezone=UTC_ZONE, hire_lead_hours=0, leaver_grace_days=0)
    assert plan.effective is None
    assert (plan.message["hrEvent"], plan.message["attributes"]["department"]) == ("update", "Executive")


def test_leaver_is_removed_when_end_date_is_over_plus_grace() -> None:
    """terminate -> action remove at the end of endDate (00:00 the next day) + grace days."""
    event = HrEvent.model_validate({**HIRE, "type": "terminate", "endDate": "2026-12-31", "startDate": None})
    plan = dispatch_for(event, now=NOW, timezone=UTC_ZONE, hire_lead_hours=0, leaver_grace_days=3)
    who = {"user": "ada@contoso.com", "source": "hr", "requestId": "hr-evt-1", "issuedAt": NOW.isoformat()}
    assert plan.message == {**who, "hrEvent": "terminate", "action": "remove"}
    assert plan.effective == datetime(2027, 1, 4, tzinfo=UTC)


def test_leaver_without_end_date_still_gets_the_grace_period() -> None:
    """No endDate: now + grace (immediately with the default 0)."""
    event = HrEvent.model_validate({**HIRE, "type": "terminate", "startDate": None})
    assert dispatch_for(event, now=NOW, timezone=UTC_ZONE, hire_lead_hours=0, leaver_grace_days=0).effective == NOW
    later = dispatch_for(event, now=NOW, timezone=UTC_ZONE, hire_lead_hours=0, leaver_grace_days=2).effective
    assert later == datetime(2026, 11, 28, 12, tzinfo=UTC)


def test_published_schema_is_generated_from_the_model() -> None:
    """docs/hr-events.schema.json equals what the pydantic model produces (run `make schema` after changes)."""
    published = json.loads((REPO / "docs" / "hr-events.schema.json").read_text())
    assert published == json.loads(json.dumps(json_schema()))
    assert {"HrEvent", "HrEventBatch"} <= set(published["$defs"])


def test_dates_parse_as_dates() -> None:
    """startDate is a calendar date."""
    assert HrEvent.model_validate(HIRE).start_date == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"eventId": "e1", "employeeId": ' + b"7" * 5000 + b"}", "integer string conversion"),
    ],
    ids=["nested-100000", "5000-digits"],
)
def test_bodies_json_cannot_read_are_payload_problems_not_crashes(raw: bytes, why: str) -> None:
    """Deep nesting (RecursionError) and a 5,000-digit number (ValueError) become a 400 naming the problem."""
    with pytest.raises(PayloadInvalid) as caught:
        parse_events(raw)
    [problem] = caught.value.problems
    assert problem["loc"] == "(body)"
    assert why in problem["msg"]
