"""HR events (joiner / mover / leaver): the published schema, validation, and what each event asks for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from licensing.core.messages import UnreadableJson, load_json

MAX_EVENTS = 500
Text = Annotated[str, Field(min_length=1, max_length=256)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HrEvent(_Model):
    """One joiner (hire), mover (update) or leaver (terminate) from the HR system."""

    event_id: str = Field(
        alias="eventId",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$",
        description="Unique per event; a repeat of an id already received is acknowledged as a duplicate",
    )
    type: Literal["hire", "update", "terminate"]
    employee_id: Text = Field(alias="employeeId")
    user_principal_name: str = Field(alias="userPrincipalName", pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=256)
    department: Text | None = None
    job_title: Text | None = Field(default=None, alias="jobTitle")
    company_name: Text | None = Field(default=None, alias="companyName")
    employee_type: Text | None = Field(default=None, alias="employeeType")
    country: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2; becomes the usage location"
    )
    start_date: date | None = Field(default=None, alias="startDate", description="hire: licensed from this day (UTC)")
    end_date: date | None = Field(default=None, alias="endDate", description="terminate: licenses removed this day")

    @model_validator(mode="after")
    def _dates_in_order(self) -> HrEvent:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("endDate is before startDate")
        return self

    def attributes(self) -> dict[str, str]:
        """The attributes the policy matches on, as the onboarding message carries them."""
        values = {
            "department": self.department,
            "jobTitle": self.job_title,
            "companyName": self.company_name,
            "employeeType": self.employee_type,
            "country": self.country,
        }
        return {k: v for k, v in values.items() if v}


class HrEventBatch(_Model):
    """Up to 500 events in one request."""

    events: list[HrEvent] = Field(min_length=1, max_length=MAX_EVENTS)

    @model_validator(mode="after")
    def _unique_ids(self) -> HrEventBatch:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.event_id] = counts.get(event.event_id, 0) + 1
        if repeated := sorted(k for k, n in counts.items() if n > 1):
            raise ValueError(f"eventId repeated within the batch: {', '.join(repeated)}")
        return self


_PAYLOAD: TypeAdapter[HrEvent | HrEventBatch] = TypeAdapter(HrEvent | HrEventBatch)


class PayloadInvalid(Exception):  # becomes the 400 response
    """Field-level problems: a list of {"loc": "events[3].country", "msg": "..."}."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


def parse_events(body: bytes) -> list[HrEvent]:
    """One event or a batch; PayloadInvalid lists every problem with where it is."""
    try:
        data = load_json(body)
    except UnreadableJson as exc:
        raise PayloadInvalid([{"loc": "(body)", "msg": f"not valid JSON: {exc}"}]) from None
    if not isinstance(data, dict):
        raise PayloadInvalid([{"loc": "(body)", "msg": 'expected an event object or {"events": [...]}'}])
    try:
        if "events" in data:
            return HrEventBatch.model_validate(data).events
        return [HrEvent.model_validate(data)]
    except ValidationError as exc:
        raise PayloadInvalid([{"loc": _where(err["loc"]), "msg": err["msg"]} for err in exc.errors()]) from None


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the webhook body (docs/hr-events.schema.json is generated from this)."""
    schema = _PAYLOAD.json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "HR events for POST /api/hr/events",
        "description": (
            'One event, or {"events": [...]} with up to 500. Sign with X-Timestamp (Unix seconds) and '
            "X-Signature = hex HMAC-SHA256(secret, X-Timestamp + '.' + raw body)."
        ),
        **schema,
    }


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What an event becomes: a license-requests message and when it should take effect (None = now)."""

    message: dict[str, Any]
    effective: datetime | None


def dispatch_for(
    event: HrEvent, *, now: datetime, timezone: ZoneInfo, hire_lead_hours: int, leaver_grace_days: int
) -> Dispatch:
    """Joiner and mover: assign per policy (a hire from its start date); leaver: remove when endDate is over.

    HR dates are calendar days in the HR system's time zone: a hire is licensed from 00:00 local on startDate
    (less the lead time), a leaver loses licenses at the end of endDate (00:00 local the next day) plus the
    grace days, or now plus the grace days without an endDate.
    """
    message: dict[str, Any] = {
        "user": event.user_principal_name,
        "source": "hr",
        "requestId": f"hr-{event.event_id}",
        "issuedAt": now.isoformat(),
        "hrEvent": event.type,
    }
    if event.type == "terminate":
        message["action"] = "remove"
        ends = _local_midnight(event.end_date + timedelta(days=1), timezone) if event.end_date else now
        return Dispatch(message, ends + timedelta(days=leaver_grace_days))
    message["attributes"] = event.attributes()
    if event.country:
        message["usageLocation"] = event.country
    if event.type == "hire" and event.start_date:
        return Dispatch(message, _local_midnight(event.start_date, timezone) - timedelta(hours=hire_lead_hours))
    return Dispatch(message, None)


def _local_midnight(day: date, timezone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone).astimezone(UTC)
