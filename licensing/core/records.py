"""What we record in Table storage: the latest status per user+SKU, and an append-only audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

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
