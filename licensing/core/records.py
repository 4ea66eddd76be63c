"""What we record in Table storage: the latest status per user+SKU, and an append-only audit trail."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# action-required: a plan waits for an admin (PendingActivation / PendingProvisioning, a group license in error):
# re-checking will not settle it, the reason names the fix.
Outcome = Literal["assigned", "verified", "pending", "action-required", "blocked", "failed", "rejected", "removed"]
OUTCOMES: tuple[Outcome, ...] = (
    "assigned",
    "verified",
    "pending",
    "action-required",
    "blocked",
    "failed",
    "rejected",
    "removed",
)
REQUEST_LEVEL = "-"  # RowKey of a status row about the request itself (no SKU known yet)
UNIDENTIFIED = "_unidentified"  # PartitionKey for messages that name no user at all
LEAVER = "~leaver"  # RowKey of the tombstone: a leaver is not licensed again until a later HR hire


def utcnow() -> datetime:
    """Aware UTC now (Table storage stores UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """Latest known state of one user's SKU (or of the request, with sku ``-``)."""

    user_key: str
    sku: str
    user_principal_name: str
    outcome: Outcome
    reason: str
    request_id: str
    source: str
    rule: str = ""
    disabled_plans: tuple[str, ...] = ()
    plan_statuses: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 0
    updated_at: datetime = field(default_factory=utcnow)
    plan_source: str = ""  # where plan_statuses were read (model.PlanSource), empty before any check
    request: str = ""  # a blocked row's request as JSON: a freed seat requeues it as HR sent it (attributes too)


EventKind = Literal[
    "AssignmentRequested",
    "LicenseAssigned",
    "LicenseRemoved",
    "UsageLocationSet",
    "AlreadyCompliant",
    "AssignmentVerified",
    "AssignmentPending",
    "AssignmentFailed",
    "AdminActionRequired",
    "AssignmentBlocked",
    "RequestRejected",
    "RequestDeferred",
    "AttemptFailed",
    "MessagePoisoned",
    "SeatsLow",
    "CheckIgnored",
    "RequestSuperseded",
]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, and why. ``before``/``after`` are disabled plan names."""

    user_key: str
    kind: EventKind
    request_id: str
    source: str
    sku: str = ""
    before: tuple[str, ...] | None = None
    after: tuple[str, ...] | None = None
    rule: str = ""
    detail: str = ""
    at: datetime = field(default_factory=utcnow)


# Rows that stand for an assignment of the SKU: a check of another request, or of another disabled set, is stale.
_ASSIGNMENT = frozenset({"assigned", "verified", "pending"})
_CHECKED = _ASSIGNMENT | {"action-required", "failed"}


def stale_check(row: StatusRecord | None, *, left: bool, request_id: str, disabled: tuple[str, ...]) -> str | None:
    """Why a check of ``request_id``'s assignment (with these disabled plan names) no longer describes the SKU,
    or None when its verdict may be recorded. ``left``: the user has a leaver tombstone.

    A check is tied to the row as its assignment wrote it: a removal, a leaver, another request's assignment or
    another disabled set since then make it stale. A failed or action-required row with the same disabled set
    may be re-checked by any request (``requeue`` after an admin fixed it), and no row at all means nothing newer
    was recorded (a user licensed by hand, or an assignment whose row was never written).
    """
    if left:
        return "the user left (HR terminate) after it was sent"
    if row is None:
        return None
    if row.outcome == "removed":
        return f"{row.sku} was removed since (request {row.request_id})"
    if row.outcome in _CHECKED and sorted(row.disabled_plans) != sorted(disabled):
        now = ", ".join(row.disabled_plans) or "none"
        return f"{row.sku} was assigned since with other disabled plans ({now}; request {row.request_id})"
    if row.outcome in _ASSIGNMENT and row.request_id != request_id:
        return f"{row.sku} was assigned since by request {row.request_id}"
    return None


def requeue_message(row: StatusRecord, *, tag: str) -> dict[str, Any]:
    """The license-requests message that sends ``row``'s user back: the request kept on the row (its attributes,
    usage location and issuedAt intact, attempts reset) or, without one, a bare manual request. ``tag`` makes the
    requestId new (``<original>+<tag>``) so the audit trail tells the retry from the original."""
    bare: dict[str, Any] = {"user": row.user_key, "source": "manual", "requestId": tag}
    try:
        kept = json.loads(row.request) if row.request else None
    except json.JSONDecodeError:
        kept = None
    if not isinstance(kept, dict) or not isinstance(kept.get("requestId"), str):
        return bare
    original = kept["requestId"].split("+", 1)[0][:200]
    return {**kept, "requestId": f"{original}+{tag}", "attempt": 0, "usageLocationWaits": 0}
