"""Provisioning as Graph reports it: each plan's provisioningStatus (licenseDetails), each service's
(provisionedPlans), each assignment's state (licenseAssignmentStates), and the admin's side of it -
plans waiting for activation and plans Microsoft added to a SKU.

A mixin of TenantState: it reads the directory and the clock the tenant keeps. Statuses follow
https://learn.microsoft.com/graph/api/resources/serviceplaninfo: ``PendingInput`` while the service
has not confirmed yet (what a new plan shows in the strict profile), ``PendingActivation`` until an
admin activates the service, ``PendingProvisioning`` for a plan Microsoft added to a SKU that the
tenant has not activated yet.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

from licensing.dev.tenant.model import Assignment, GraphError, ServicePlan, Sku, User
from licensing.dev.tenant.strict import Strictness

# Best first: which status a plan shows when several assignments of one SKU hold it.
_STATUS_RANK = ("Success", "PendingActivation", "PendingProvisioning", "PendingInput", "Error", "Disabled")
# Worst first: a service's provisionedPlans status is the worst of its enabled plans' statuses.
_WORST_FIRST = ("Error", "PendingActivation", "PendingProvisioning", "PendingInput", "Success")


class Provisioning:
    """Plan, service and assignment statuses; TenantState supplies the attributes declared here."""

    clock: Callable[[], float]
    provisioning_delay: float
    tenant_id: str
    skus: dict[str, Sku]
    strictness: Strictness
    status_overrides: dict[tuple[str, str], str]
    activation_required: set[str]  # plan names (upper-case) an admin must activate: PendingActivation
    plans_added: set[str]  # plan names Microsoft added to a SKU, not yet activated: PendingProvisioning
    _pinned: tuple[int, frozenset[str]]

    def user(self, ref: str) -> User:
        """A user by id or UPN (TenantState's)."""
        raise NotImplementedError

    def users_holding_plan(self, plan_name: str) -> list[User]:
        """Users holding a SKU with this plan (TenantState's)."""
        raise NotImplementedError

    def record_change(self, user_id: str) -> int:
        """Log a change to a user (TenantState's)."""
        raise NotImplementedError

    # --- the admin's side ------------------------------------------------------------------------

    def force_status(self, user_ref: str, plan_name: str, status: str | None) -> None:
        """Pin an enabled plan's provisioningStatus for a user (e.g. "Error", "PendingInput"); None unpins."""
        key = (self.user(user_ref).id, plan_name.upper())
        if status is None:
            self.status_overrides.pop(key, None)
        else:
            self.status_overrides[key] = status

    def require_activation(self, plan_name: str) -> None:
        """Make a plan show ``PendingActivation`` for every holder until ``activate(plan_name)``."""
        self.activation_required.add(plan_name.upper())
        self._touch(plan_name)

    def activate(self, plan_name: str) -> None:
        """The admin activates a plan: it leaves PendingActivation / PendingProvisioning for its usual status."""
        self.activation_required.discard(plan_name.upper())
        self.plans_added.discard(plan_name.upper())
        self._touch(plan_name)

    def add_plan_to_sku(self, part_number: str, plan: ServicePlan) -> Sku:
        """Microsoft adds a plan to a SKU: every holder has it enabled at once, ``PendingProvisioning``
        until ``activate(plan.name)`` (https://learn.microsoft.com/graph/api/resources/serviceplaninfo)."""
        sku = next((s for s in self.skus.values() if s.part_number.lower() == part_number.lower()), None)
        if sku is None:
            raise GraphError(404, "Request_ResourceNotFound", f"The tenant has no SKU '{part_number}'.")
        if sku.plan(plan.id) is not None or any(p.name.upper() == plan.name.upper() for p in sku.plans):
            raise GraphError(400, "Request_BadRequest", f"SKU {part_number} already has plan {plan.name}.")
        sku.plans.append(ServicePlan(plan.id.lower(), plan.name, plan.applies_to, plan.service))
        self.plans_added.add(plan.name.upper())
        self._touch(plan.name)
        return sku

    def _touch(self, plan_name: str) -> None:
        for user in self.users_holding_plan(plan_name):
            self.record_change(user.id)  # assignedPlans / provisionedPlans changed: delta reports them

    # --- reads -----------------------------------------------------------------------------------

    def plan_status(self, user: User, assignment: Assignment, plan: ServicePlan) -> str:
        """One plan's provisioningStatus on one assignment, as licenseDetails reports it."""
        if plan.id in assignment.disabled_plans:
            return "Disabled"
        name = plan.name.upper()
        forced = self.status_overrides.get((user.id, name))
        if forced:
            return forced
        if name in self.activation_required:
            return "PendingActivation"
        if name in self.plans_added:
            return "PendingProvisioning"
        ready_at = assignment.enabled_since(plan.id) + self.provisioning_delay
        return "Success" if self.clock() >= ready_at else self.strictness.settling_status

    def merged_status(self, user: User, sku_id: str, plan: ServicePlan) -> str:
        """A plan's status across every assignment of the SKU (a direct and a group one may overlap)."""
        statuses = [self.plan_status(user, a, plan) for a in user.holds(sku_id)]
        return min(statuses, key=lambda s: _STATUS_RANK.index(s) if s in _STATUS_RANK else len(_STATUS_RANK))

    def tenant_plan_status(self, plan: ServicePlan) -> str:
        """subscribedSkus servicePlans[].provisioningStatus: the plan's state in the tenant, not per user."""
        name = plan.name.upper()
        if name in self.activation_required:
            return "PendingActivation"
        return "PendingProvisioning" if name in self.plans_added else "Success"

    def provisioned_plans(self, user: User) -> list[dict[str, Any]]:
        """user.provisionedPlans as real tenants list them: one entry per plan, so several per service, each with
        its own provisioningStatus; a disabled plan keeps an entry with capabilityStatus Deleted, listed last
        (https://learn.microsoft.com/graph/api/resources/provisionedplan). A client must take the worst live
        entry of a service, not the last one, and must not read a Deleted entry as the state of the service."""
        live, deleted = [], []
        for sku in self.held_skus(user):
            for plan in sku.plans:
                status = self.merged_status(user, sku.id, plan)
                if status == "Disabled":
                    entry = {
                        "capabilityStatus": "Deleted",
                        "provisioningStatus": "Success",
                        "service": plan.service_name,
                    }
                    deleted.append(entry)
                else:
                    live.append(
                        {"capabilityStatus": "Enabled", "provisioningStatus": status, "service": plan.service_name}
                    )
        return live + deleted

    def assignment_state(self, user: User, assignment: Assignment) -> str:
        """licenseAssignmentStates[].state: Active, ActiveWithError (a plan in Error) or Error."""
        if assignment.state:
            return assignment.state
        if assignment.error not in {"None", ""}:
            return "Error"
        # Only a pinned status can be Error (see plan_status): look there, not at every plan's provisioning.
        overrides = self.status_overrides
        if user.id in self._pinned_users() and any(
            overrides.get((user.id, p.name.upper())) == "Error"
            for p in self.skus[assignment.sku_id].plans
            if p.id not in assignment.disabled_plans
        ):
            return "ActiveWithError"
        return "Active"

    def held_skus(self, user: User) -> list[Sku]:
        """The SKUs a user holds, each once, in the order first assigned (failed group licenses aside)."""
        return [self.skus[s] for s in dict.fromkeys(a.sku_id for a in user.assignments)]

    def license_details(self, user: User) -> list[dict[str, Any]]:
        """GET /users/{id}/licenseDetails items: one per SKU held, with each plan's provisioningStatus."""
        return [
            {
                "id": detail_id(self.tenant_id, sku.id),
                "skuId": sku.id,
                "skuPartNumber": sku.part_number,
                "servicePlans": [
                    {
                        "servicePlanId": p.id,
                        "servicePlanName": p.name,
                        "provisioningStatus": self.merged_status(user, sku.id, p),
                        "appliesTo": p.applies_to,
                    }
                    for p in sku.plans
                ],
            }
            for sku in self.held_skus(user)
        ]

    def _pinned_users(self) -> frozenset[str]:
        """Users with a pinned plan status (recomputed when status_overrides grows or shrinks)."""
        if self._pinned[0] != len(self.status_overrides):
            self._pinned = (len(self.status_overrides), frozenset(u for u, _ in self.status_overrides))
        return self._pinned[1]


def _severity(status: str) -> int:
    """0 for the worst status; a status outside Graph's list counts as the worst."""
    return _WORST_FIRST.index(status) if status in _WORST_FIRST else 0


def detail_id(tenant_id: str, sku_id: str) -> str:
    """licenseDetails ids as Graph builds them: base64url of the tenant and SKU GUIDs (little-endian)."""
    raw = uuid.UUID(tenant_id).bytes_le + uuid.UUID(sku_id).bytes_le
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
