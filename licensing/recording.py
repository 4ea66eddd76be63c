"""Shared ways to record what happened: status rows + audit events, and deferred retries."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from licensing import telemetry
from licensing.composition import Services
from licensing.messages import peek_identity
from licensing.records import REQUEST_LEVEL, UNIDENTIFIED, AuditEvent, EventKind, Outcome, StatusRecord

MAX_BACKOFF_SECONDS = 6 * 3600


@dataclass(frozen=True, slots=True)
class Handled:
    """How a message ended: the outcome word and a reason for the log."""

    outcome: str
    reason: str


def backoff(base: int, attempt: int, *, cap: int = MAX_BACKOFF_SECONDS) -> int:
    """Exponential backoff with ±20 % jitter so a crowd of retries does not return at one instant."""
    delay = min(base * 2 ** max(attempt - 1, 0), cap)
    return max(int(delay * random.uniform(0.8, 1.2)), 0) if delay else 0  # noqa: S311  # jitter, not crypto


async def record(
    services: Services,
    *,
    user_key: str,
    upn: str,
    outcome: Outcome,
    kind: EventKind,
    reason: str,
    request_id: str,
    source: str,
    sku: str = REQUEST_LEVEL,
    rule: str = "",
    attempts: int = 1,
    disabled: tuple[str, ...] = (),
    plan_statuses: Mapping[str, str] | None = None,
    before: tuple[str, ...] | None = None,
    at: datetime | None = None,
) -> None:
    """Write the latest status for user+SKU and append the matching audit event (counted, see telemetry.recorded).

    ``at`` dates the status when it was decided earlier than now (so a later outcome is never overwritten by it).
    """
    await services.storage.put_status(
        StatusRecord(
            user_key=user_key,
            sku=sku,
            user_principal_name=upn,
            outcome=outcome,
            reason=reason,
            request_id=request_id,
            source=source,
            rule=rule,
            disabled_plans=disabled,
            plan_statuses=plan_statuses or {},
            attempts=attempts,
            updated_at=at or services.clock(),
        )
    )
    await services.storage.append_event(
        AuditEvent(
            user_key=user_key,
            kind=kind,
            request_id=request_id,
            source=source,
            sku="" if sku == REQUEST_LEVEL else sku,
            before=before,
            after=disabled if kind == "LicenseAssigned" else (() if kind == "LicenseRemoved" and before else None),
            rule=rule,
            detail=reason,
            at=services.clock(),
        )
    )
    telemetry.recorded(kind=kind, sku=sku)


async def reject_unreadable(services: Services, body: str, reason: str, *, message_id: str, source: str) -> None:
    """Record a message we cannot parse: who (as far as it says), what (an excerpt) and why."""
    user, request_id = peek_identity(body)
    user_key = user.lower() if user else UNIDENTIFIED
    await record(
        services,
        user_key=user_key,
        upn=user or "",
        outcome="rejected",
        kind="RequestRejected",
        reason=f"{reason} | message {message_id}: {body[:300]!r}",
        request_id=request_id or message_id,
        source=source,
        sku=REQUEST_LEVEL if user else f"message-{message_id}",
    )


async def note_failed_attempt(
    services: Services, *, user_key: str, request_id: str, source: str, error: BaseException, delivery: int
) -> None:
    """Remember why a delivery failed, so the poison handler can say why it gave up."""
    detail = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
    await services.storage.append_event(
        AuditEvent(
            user_key=user_key,
            kind="AttemptFailed",
            request_id=request_id,
            source=source,
            detail=f"delivery {delivery}: {detail}",
            at=services.clock(),
        )
    )


def retry_payload(message: Any, **changes: Any) -> dict[str, Any]:  # noqa: ANN401  # any pydantic message
    """The message as JSON with its attempt counter advanced (and other fields changed)."""
    data: dict[str, Any] = message.model_dump(mode="json", by_alias=True)
    data["attempt"] = data.get("attempt", 0) + 1
    data.update(changes)
    return data
