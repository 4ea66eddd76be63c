"""Plan states for app-only callers: assignedPlans joined with provisionedPlans, since licenseDetails is refused.

https://learn.microsoft.com/graph/api/user-list-licensedetails lists application permissions as "Not supported",
so a managed identity reads ``GET /users/{id}?$select=assignedLicenses,assignedPlans,provisionedPlans,
licenseAssignmentStates`` instead. assignedPlans says per plan whether the directory enabled it (capabilityStatus);
provisionedPlans says per *service* (workload: exchange, SCO, RMSOnline, ...) whether it is provisioned
(https://learn.microsoft.com/graph/api/resources/provisionedplan). Pure: plain JSON in, plain data out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from licensing.core.model import Catalog, ObservedLicense, PlanSource, PlanState

SOURCE: PlanSource = "assignedPlans+provisionedPlans"
# Enabled in the directory but no provisionedPlans entry for its service yet: the workload has not reported, so the
# plan is still settling. Never Success: only the service can say it is provisioned.
UNREPORTED = "PendingInput"
# assignedPlans.capabilityStatus when the plan is not simply Enabled (https://learn.microsoft.com/graph/api/resources/
# assignedplan): Warning is a subscription in its grace period (the plan still works, provisioning decides).
_NOT_ENABLED = {"suspended": "Error", "lockedout": "Error", "deleted": "Disabled"}


# Worst first: one provisionedPlans entry per plan, several per service; a service is as ready as its worst plan.
_WORST_FIRST = ("Error", "PendingActivation", "PendingProvisioning", "PendingInput", "Success")
_LIVE = frozenset({"enabled", "warning", ""})  # capabilityStatus of an entry that describes a plan in use


def _rank(status: str) -> int:
    return _WORST_FIRST.index(status) if status in _WORST_FIRST else 0  # an unknown status counts as the worst


def _services(user_json: Mapping[str, Any]) -> dict[str, str]:
    """provisionedPlans as service (case-folded) -> the worst provisioningStatus of its live entries.

    Real tenants list an entry per plan (several per service) and keep entries of removed plans with
    capabilityStatus Deleted: those say nothing about the plans in use, and the last entry must not win.
    """
    worst: dict[str, str] = {}
    for p in user_json.get("provisionedPlans") or []:
        if not isinstance(p, Mapping) or str(p.get("capabilityStatus") or "").casefold() not in _LIVE:
            continue
        service = str(p.get("service") or "").casefold()
        status = str(p.get("provisioningStatus") or UNREPORTED)
        if service not in worst or _rank(status) < _rank(worst[service]):
            worst[service] = status
    return worst


def _assigned(user_json: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """assignedPlans as servicePlanId -> (service, capabilityStatus); an Enabled entry wins over another SKU's."""
    plans: dict[str, tuple[str, str]] = {}
    for p in user_json.get("assignedPlans") or []:
        if not isinstance(p, Mapping):
            continue
        plan_id = str(p.get("servicePlanId") or "").lower()
        entry = (str(p.get("service") or ""), str(p.get("capabilityStatus") or ""))
        if plan_id not in plans or entry[1].casefold() in {"enabled", "warning"}:
            plans[plan_id] = entry
    return plans


def plan_status(plan_id: str, assigned: Mapping[str, tuple[str, str]], services: Mapping[str, str]) -> str:
    """One enabled plan's status: its capability, then its service's provisioning status."""
    entry = assigned.get(plan_id)
    if entry is None:  # not listed yet: the directory is still applying the assignment
        return UNREPORTED
    service, capability = entry
    if capability.casefold() in _NOT_ENABLED:
        return _NOT_ENABLED[capability.casefold()]
    return services.get(service.casefold(), UNREPORTED)


def observed_from_user_json(user_json: Mapping[str, Any], catalog: Catalog) -> tuple[ObservedLicense, ...]:
    """Every assigned SKU's plans with a provisioning status, from one user's JSON (as selected above).

    A plan in the SKU's disabledPlans is Disabled; a SKU whose direct assignment is in state Error has every
    enabled plan in Error; any other plan takes its capability joined with its service's provisioningStatus.
    """
    assigned, services = _assigned(user_json), _services(user_json)
    errored = {
        str(s.get("skuId") or "").lower()
        for s in user_json.get("licenseAssignmentStates") or []
        if isinstance(s, Mapping) and not s.get("assignedByGroup") and str(s.get("state") or "").casefold() == "error"
    }
    observed = []
    for held in user_json.get("assignedLicenses") or []:
        if not isinstance(held, Mapping):
            continue
        sku_id = str(held.get("skuId") or "").lower()
        sku = catalog.by_id(sku_id)
        disabled = {str(p).lower() for p in held.get("disabledPlans") or []}
        plans = []
        for plan in sku.plans if sku else ():
            if plan.id.lower() in disabled:
                status = "Disabled"
            elif sku_id in errored:
                status = "Error"
            else:
                status = plan_status(plan.id.lower(), assigned, services)
            plans.append(PlanState(plan.id.lower(), plan.name, status))
        observed.append(ObservedLicense(sku_id, sku.part_number if sku else sku_id, tuple(plans), source=SOURCE))
    return tuple(observed)
