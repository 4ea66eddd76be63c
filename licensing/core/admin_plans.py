"""Pure decisions behind the admin CLI's assign and remove: the exact Graph requests, no I/O.

`assign --keep-disabled` is the Set-MgUserLicense "add more disabled plans" case: the requested plans are
added to what the user already has disabled, instead of replacing that set as -LicenseOptions did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from licensing.core.model import Catalog, Sku, UserFacts
from licensing.core.planning import AssignmentPlan, DesiredLicense
from licensing.core.verification import LicenseVerdict


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """One request as Graph receives it (printed verbatim by --dry-run)."""

    method: str
    url: str
    body: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape --dry-run prints."""
        return {"method": self.method, "url": self.url, "body": self.body}


def keep_disabled(desired: DesiredLicense, user: UserFacts, catalog: Catalog) -> DesiredLicense:
    """``desired`` with the user's currently disabled plans of that SKU added (direct assignment only)."""
    held = user.direct(desired.sku_id)
    if held is None:
        return desired
    ids = desired.disabled_plan_ids | {p.lower() for p in held.disabled_plans}
    sku = catalog.by_id(desired.sku_id)
    names = {p.id.lower(): p.name for p in sku.plans} if sku else {}
    return replace(
        desired, disabled_plan_ids=frozenset(ids), disabled_plan_names=tuple(sorted(names.get(i, i) for i in ids))
    )


def assignment_requests(user: UserFacts, plan: AssignmentPlan) -> tuple[GraphRequest, ...]:
    """PATCH usageLocation (when needed) then one assignLicense with every change and removal."""
    requests = []
    if plan.usage_location:
        requests.append(GraphRequest("PATCH", f"/users/{user.id}", {"usageLocation": plan.usage_location}))
    if plan.changes or plan.removals:
        body = {
            "addLicenses": [
                {"skuId": c.desired.sku_id, "disabledPlans": sorted(c.desired.disabled_plan_ids)} for c in plan.changes
            ],
            "removeLicenses": [r.sku_id for r in plan.removals],
        }
        requests.append(GraphRequest("POST", f"/users/{user.id}/assignLicense", body))
    return tuple(requests)


RemovalAction = Literal["remove", "group-only", "absent"]


@dataclass(frozen=True, slots=True)
class RemovalPlan:
    """What `remove` does for one user and SKU, and what it says about group-based copies."""

    action: RemovalAction
    sku_id: str
    part_number: str
    groups: tuple[str, ...]
    request: GraphRequest | None

    @property
    def note(self) -> str:
        """One sentence for the admin."""
        groups = ", ".join(self.groups)
        if self.action == "absent":
            return f"does not hold {self.part_number}; nothing sent"
        if self.action == "group-only":
            return (
                f"holds {self.part_number} only through group(s) {groups}; group-assigned licenses are never "
                "removed here: remove the user from the group instead"
            )
        kept = f"; the copy from group(s) {groups} stays (never touched)" if self.groups else ""
        return f"direct {self.part_number} assignment removed{kept}"


def plan_removal(user: UserFacts, sku: Sku) -> RemovalPlan:
    """Remove the user's direct assignment of ``sku``; a group-based one is never touched."""
    groups = tuple(
        sorted(h.assigned_by_group for h in user.licenses if h.sku_id.lower() == sku.id.lower() and h.assigned_by_group)
    )
    if user.direct(sku.id) is None:
        return RemovalPlan("group-only" if groups else "absent", sku.id.lower(), sku.part_number, groups, None)
    body = {"addLicenses": [], "removeLicenses": [sku.id.lower()]}
    request = GraphRequest("POST", f"/users/{user.id}/assignLicense", body)
    return RemovalPlan("remove", sku.id.lower(), sku.part_number, groups, request)


def seats_needed(plans: dict[str, AssignmentPlan], catalog: Catalog) -> list[str]:
    """Warnings for a batch: SKUs where the users needing a new seat outnumber the free seats."""
    wanted: dict[str, int] = {}
    for plan in plans.values():
        for change in plan.changes:
            if change.before is None:
                wanted[change.desired.sku_id] = wanted.get(change.desired.sku_id, 0) + 1
    warnings = []
    for sku_id, count in sorted(wanted.items()):
        sku = catalog.by_id(sku_id)
        free = sku.free if sku else 0
        if count > free:
            name = sku.part_number if sku else sku_id
            warnings.append(f"{count} users need a new {name} seat but only {max(free, 0)} are free")
    return warnings


def against_assignment(
    verdict: LicenseVerdict, desired: DesiredLicense, user: UserFacts, catalog: Catalog
) -> LicenseVerdict:
    """A verdict that also checks the direct assignment's disabled set: a plan the assignment leaves enabled
    although the policy disables it is "failed" at once, not "pending" while Graph provisions the wrong thing."""
    held = user.direct(desired.sku_id)
    have = frozenset(p.lower() for p in held.disabled_plans) if held else None
    if have is None or have == desired.disabled_plan_ids or verdict.outcome == "failed":
        return verdict
    sku = catalog.by_id(desired.sku_id)
    names = {p.id.lower(): p.name for p in sku.plans} if sku else {}
    shown = ", ".join(sorted(names.get(i, i) for i in have)) or "none"
    policy_disables = ", ".join(desired.disabled_plan_names) or "none"
    reason = f"{desired.part_number} is assigned with disabled plans {shown}; the policy disables {policy_disables}"
    return replace(verdict, outcome="failed", reason=reason)
