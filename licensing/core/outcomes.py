"""What a use case decided, as plain values: one recorder (services.recording) stores and counts them.

``Decided`` changes the latest status of a user's SKU (or of the request, sku ``-``) and appends the matching audit
event; ``Noted`` is an audit event alone (an attempt that failed, a request deferred, a usage location set).
Both carry a ``Subject``: whom it is about and which request said so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from licensing.core.model import Catalog
from licensing.core.planning import LicenseChange, Removal
from licensing.core.records import REQUEST_LEVEL, AuditEvent, EventKind, Outcome, StatusRecord


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom an outcome is about (the user's key and UPN) and which request it answers, on which attempt."""

    user_key: str
    upn: str
    request_id: str
    source: str
    attempts: int = 1

    def as_user(self, user_key: str, upn: str) -> Subject:
        """The same request, about the user once known by object id."""
        return replace(self, user_key=user_key, upn=upn)


@dataclass(frozen=True, slots=True)
class Decided:
    """One decided outcome for a user's SKU: the status row it leaves and the audit event that explains it.

    ``at`` dates the status when it was decided earlier than it is written (so a later outcome is never
    overwritten by it); ``before`` is the disabled plan set it replaced, where that is known.
    """

    subject: Subject
    outcome: Outcome
    kind: EventKind
    reason: str
    sku: str = REQUEST_LEVEL
    rule: str = ""
    disabled: tuple[str, ...] = ()
    plan_statuses: Mapping[str, str] = field(default_factory=dict)
    before: tuple[str, ...] | None = None
    at: datetime | None = None
    plan_source: str = ""
    request: str = ""  # the request as JSON, kept on a blocked row so a freed seat can requeue it as it was

    def status_row(self, now: datetime) -> StatusRecord:
        """The LicenseStatus row this outcome leaves (dated ``at`` when given, else ``now``)."""
        who = self.subject
        return StatusRecord(
            user_key=who.user_key,
            sku=self.sku,
            user_principal_name=who.upn,
            outcome=self.outcome,
            reason=self.reason,
            request_id=who.request_id,
            source=who.source,
            rule=self.rule,
            disabled_plans=self.disabled,
            plan_statuses=dict(self.plan_statuses),
            attempts=who.attempts,
            updated_at=self.at or now,
            plan_source=self.plan_source,
            request=self.request,
        )

    def audit_event(self, now: datetime) -> AuditEvent:
        """The LicenseEvents row: before/after disabled plans for assignments and removals."""
        if self.kind == "LicenseAssigned":
            after: tuple[str, ...] | None = self.disabled
        elif self.kind == "LicenseRemoved" and self.before:
            after = ()
        else:
            after = None
        return Noted(
            self.subject,
            self.kind,
            self.reason,
            sku="" if self.sku == REQUEST_LEVEL else self.sku,
            rule=self.rule,
            before=self.before,
            after=after,
        ).audit_event(now)


@dataclass(frozen=True, slots=True)
class Noted:
    """An audit event that changes no status: why a delivery failed, a deferral, a usage location set."""

    subject: Subject
    kind: EventKind
    detail: str
    sku: str = ""
    rule: str = ""
    before: tuple[str, ...] | None = None
    after: tuple[str, ...] | None = None

    def audit_event(self, now: datetime) -> AuditEvent:
        """The LicenseEvents row, dated ``now``."""
        who = self.subject
        return AuditEvent(
            user_key=who.user_key,
            kind=self.kind,
            request_id=who.request_id,
            source=who.source,
            sku=self.sku,
            before=self.before,
            after=self.after,
            rule=self.rule,
            detail=self.detail,
            at=now,
        )


def plan_names(catalog: Catalog, sku_id: str, plan_ids: frozenset[str]) -> tuple[str, ...]:
    """Service plan ids as sorted names (an id the catalog does not know stays an id)."""
    sku = catalog.by_id(sku_id)
    names = {p.id: p.name for p in sku.plans} if sku else {}
    return tuple(sorted(names.get(p, p) for p in plan_ids))


def describe_change(change: LicenseChange, catalog: Catalog) -> str:
    """``EMS assigned with disabled plans: INTUNE_A`` or ``EMS disabled plans changed from [..] to [..]``."""
    desired = change.desired
    after = ", ".join(desired.disabled_plan_names) or "none"
    if change.before is None:
        return f"{desired.part_number} assigned with disabled plans: {after}"
    was = ", ".join(plan_names(catalog, desired.sku_id, change.before)) or "none"
    return f"{desired.part_number} disabled plans changed from [{was}] to [{after}]"


def assignment_requested(subject: Subject, change: LicenseChange, catalog: Catalog) -> Noted:
    """The intent, kept before the write: if recording fails after it, this still holds the before/after."""
    return Noted(
        subject,
        "AssignmentRequested",
        describe_change(change, catalog),
        sku=change.desired.part_number,
        before=_before(change, catalog),
        after=change.desired.disabled_plan_names,
    )


def license_assigned(subject: Subject, change: LicenseChange, catalog: Catalog, *, rule: str, at: datetime) -> Decided:
    """The ``assigned`` row of one SKU just written (dated ``at``, before its check was sent)."""
    return Decided(
        subject,
        "assigned",
        "LicenseAssigned",
        describe_change(change, catalog),
        sku=change.desired.part_number,
        rule=rule,
        disabled=change.desired.disabled_plan_names,
        before=_before(change, catalog),
        at=at,
    )


def license_removed(
    subject: Subject, removal: Removal, catalog: Catalog, *, why: str, rule: str = "", note: str = ""
) -> Decided:
    """The ``removed`` row of one SKU taken away: its disabled plans before, nothing after."""
    return Decided(
        subject,
        "removed",
        "LicenseRemoved",
        f"{removal.part_number} removed ({why}); its seat is free again{note}",
        sku=removal.part_number,
        rule=rule,
        before=plan_names(catalog, removal.sku_id, removal.disabled_before),
    )


def _before(change: LicenseChange, catalog: Catalog) -> tuple[str, ...] | None:
    return None if change.before is None else plan_names(catalog, change.desired.sku_id, change.before)
