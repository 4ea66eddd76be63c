"""Queue message schemas (pydantic): what producers put on license-requests and license-verify."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from licensing.core.errors import InvalidRequest
from licensing.core.records import utcnow

MAX_MESSAGE_BYTES = 32 * 1024  # a real request is < 2 KiB; the queue's own limit is 64 KiB after base64
# issuedAt decides whether an HR request outranks a leaver's tombstone: a date in the future would outrank every
# later terminate too. Producers stamp it when they decide, so only clock drift between instances is tolerated.
ISSUED_AT_SKEW = timedelta(minutes=5)

Source = Literal["hr", "graph", "manual", "sweep"]
Short = Annotated[str, Field(min_length=1, max_length=256)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OnboardRequest(_Message):
    """Assign the policy's licenses to one user."""

    user: Short = Field(description="Entra object id or userPrincipalName")
    source: Source
    request_id: Short = Field(alias="requestId")
    attributes: dict[Short, Annotated[str, Field(max_length=256)]] = Field(default_factory=dict, max_length=32)
    usage_location: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = Field(default=None, alias="usageLocation")
    action: Literal["assign", "remove"] = Field(
        default="assign", description="assign: apply the policy; remove: a leaver loses the licenses the app manages"
    )
    attempt: int = Field(default=0, ge=0, le=1000, description="set by the app when it re-enqueues")
    converge: bool = Field(
        default=False,
        description="sweep remediation: treat every SKU the policy names as the app's (remove what the rule "
        "does not give, reclaim disabled accounts), not only the licenses the app assigned",
    )
    issued_at: AwareDatetime | None = Field(
        default=None, alias="issuedAt", description="when the producer decided it (HR: when the event arrived)"
    )
    hr_event: Literal["hire", "update", "terminate"] | None = Field(
        default=None,
        alias="hrEvent",
        description="set by the HR webhook: the HR event this request carries out. Only a later hire outranks a "
        "terminate (an update during the notice period does not cancel it) or passes a leaver's tombstone",
    )
    usage_location_waits: int = Field(
        default=0,
        ge=0,
        le=100,
        alias="usageLocationWaits",
        description="set by the app: times this request waited for a usage location it set to replicate",
    )
    write_retries: int = Field(
        default=0,
        ge=0,
        le=100,
        alias="writeRetries",
        description="set by the app: times Graph throttled or failed this request's write and it was sent again",
    )

    @field_validator("issued_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        # The clock is read here rather than passed in: every caller validates a message the moment it arrives.
        if value is not None and value - utcnow() > ISSUED_AT_SKEW:
            minutes = int(ISSUED_AT_SKEW.total_seconds() // 60)
            raise ValueError(f"is in the future; at most {minutes} minutes ahead of this app's clock is allowed")
        return value


class VerifyLicense(_Message):
    """One SKU as it was assigned: the plans that must be Disabled."""

    sku_id: Short = Field(alias="skuId")
    part_number: Short = Field(alias="partNumber")
    disabled_plans: tuple[Short, ...] = Field(default=(), alias="disabledPlans")
    disabled_plan_names: tuple[Short, ...] = Field(default=(), alias="disabledPlanNames")


class VerifyRequest(_Message):
    """Check every plan's provisioning status for the licenses just assigned."""

    user_id: Short = Field(alias="userId")
    user_principal_name: Short = Field(alias="userPrincipalName")
    request_id: Short = Field(alias="requestId")
    source: Source
    rule: Short
    licenses: tuple[VerifyLicense, ...] = Field(min_length=1, max_length=20)
    deadline: AwareDatetime
    attempt: int = Field(default=0, ge=0, le=1000)


M = TypeVar("M", bound=_Message)


class UnreadableJson(ValueError):
    """json.loads gave up: the text says why in words safe to show the sender (no payload echoed)."""


def load_json(body: bytes | str) -> Any:  # noqa: ANN401  # JSON
    """json.loads for text from outside: every way it can fail becomes UnreadableJson.

    Besides malformed text, json.loads raises RecursionError for arrays or objects nested about a thousand deep,
    and a bare ValueError for an integer over Python's 4,300-digit conversion limit: neither is a JSONDecodeError.
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise UnreadableJson("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise UnreadableJson(str(exc)) from None
    except UnicodeDecodeError:
        raise UnreadableJson("not UTF-8 text") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise UnreadableJson(f"a value cannot be read: {str(exc).split(':')[0]}") from None
    except TypeError:
        raise UnreadableJson("not text") from None


def parse_message(body: bytes | str, model: type[M]) -> M:
    """Decode and validate a queue message; InvalidRequest names each problem and where it is."""
    size = len(body.encode() if isinstance(body, str) else body)
    if size > MAX_MESSAGE_BYTES:
        raise InvalidRequest(f"message is {size:,} bytes; the limit is {MAX_MESSAGE_BYTES:,} bytes")
    try:
        data = load_json(body)
    except UnreadableJson as exc:
        raise InvalidRequest(f"message is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"message must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(message)'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidRequest(f"invalid {model.__name__}: {problems}") from None


def peek_identity(body: bytes | str) -> tuple[str | None, str | None]:
    """Best-effort (user, requestId) from a message that may not validate, so rejects say who. Never raises."""
    try:
        data = load_json(body)
    except UnreadableJson:
        return None, None
    if not isinstance(data, dict):
        return None, None
    user = data.get("user") or data.get("userId")
    request_id = data.get("requestId")
    return (
        user[:256] if isinstance(user, str) and user else None,
        request_id[:256] if isinstance(request_id, str) and request_id else None,
    )
