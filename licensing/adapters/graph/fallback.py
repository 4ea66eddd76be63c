"""Plan states from a user's assignedPlans + licenseAssignmentStates, for when licenseDetails is refused."""

from __future__ import annotations

from typing import Any

from licensing.core.model import Catalog, ObservedLicense, PlanState

# assignedPlans.capabilityStatus -> the closest licenseDetails provisioningStatus
_CAPABILITY = {
    "enabled": "Success",
    "warning": "Success",  # subscription in its grace period: the plan still works
    "suspended": "Error",
    "lockedout": "Error",
    "deleted": "Disabled",
}


def plans_from_user(user: Any, catalog: Catalog) -> tuple[ObservedLicense, ...]:  # noqa: ANN401  # msgraph User
    """Rebuild per-plan status: disabled plans from assignedLicenses, the rest from assignedPlans.

    A plan not yet listed in assignedPlans is still being provisioned; a license whose assignment
    state is Error has every enabled plan in Error.
    """
    capability = {
        str(p.service_plan_id).lower(): _CAPABILITY.get((p.capability_status or "").lower(), "PendingInput")
        for p in user.assigned_plans or []
    }
    errored = {
        str(s.sku_id).lower() for s in user.license_assignment_states or [] if (s.state or "").lower() == "error"
    }
    observed = []
    for held in user.assigned_licenses or []:
        sku_id = str(held.sku_id).lower()
        sku = catalog.by_id(sku_id)
        disabled = {str(p).lower() for p in held.disabled_plans or []}
        plans = []
        for plan in sku.plans if sku else ():
            if plan.id in disabled:
                status = "Disabled"
            elif sku_id in errored:
                status = "Error"
            else:
                status = capability.get(plan.id, "PendingProvisioning")
            plans.append(PlanState(plan.id, plan.name, status))
        observed.append(ObservedLicense(sku_id, sku.part_number if sku else sku_id, tuple(plans)))
    return tuple(observed)
