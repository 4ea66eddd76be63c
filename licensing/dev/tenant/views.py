"""Graph's JSON for the tenant's records: users (with $select), subscribedSkus, @odata.context."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from licensing.dev.tenant.model import Sku, User, iso, select_names
from licensing.dev.tenant.state import TenantState

# What GET /users/{id} returns without $select (Graph's default property set, in Graph's order).
DEFAULT_SELECT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)


def _assigned_licenses(state: TenantState, user: User) -> list[dict[str, Any]]:
    # One entry per SKU: a plan is disabled only if every assignment of the SKU (direct, groups) disables it.
    if len(user.assignments) == 1:  # the common case, fast
        only = user.assignments[0]
        return [{"disabledPlans": list(only.disabled_plans), "skuId": only.sku_id}]
    out = []
    for sku in state.held_skus(user):
        held = user.holds(sku.id)
        disabled = [p for p in held[0].disabled_plans if all(p in a.disabled_plans for a in held[1:])]
        out.append({"disabledPlans": disabled, "skuId": sku.id})
    return out


def _assigned_plans(state: TenantState, user: User) -> list[dict[str, Any]]:
    # Directory view of the plans, one entry per SKU and plan: Enabled from the moment an assignment
    # switches it on, Deleted while every assignment disables it. It says nothing about workload
    # provisioning; that is licenseDetails' provisioningStatus.
    out = []
    for sku in state.held_skus(user):
        held = user.holds(sku.id)
        for plan in sku.plans:
            enabling = [a.enabled_since(plan.id) for a in held if plan.id not in a.disabled_plans]
            out.append(
                {
                    "assignedDateTime": iso(min(enabling) if enabling else min(a.assigned_at for a in held)),
                    "capabilityStatus": "Enabled" if enabling else "Deleted",
                    "service": plan.service_name,
                    "servicePlanId": plan.id,
                }
            )
    return out


def _assignment_states(state: TenantState, user: User) -> list[dict[str, Any]]:
    # Failed group licenses (state Error) are listed here and nowhere else:
    # https://learn.microsoft.com/graph/api/resources/licenseassignmentstate
    return [
        {
            "assignedByGroup": a.assigned_by_group,
            "disabledPlans": list(a.disabled_plans),
            "error": a.error,
            "lastUpdatedDateTime": iso(a.updated_at if a.updated_at is not None else a.assigned_at),
            "skuId": a.sku_id,
            "state": state.assignment_state(user, a),
        }
        for a in [*user.assignments, *user.failed_assignments]
    ]


_PROPERTIES: dict[str, Callable[[TenantState, User], Any]] = {
    "id": lambda _, u: u.id,
    "userPrincipalName": lambda _, u: u.user_principal_name,
    "displayName": lambda _, u: u.display_name,
    "givenName": lambda _, u: u.given_name,
    "surname": lambda _, u: u.surname,
    "mail": lambda _, u: u.mail,
    "businessPhones": lambda _, u: [],
    "mobilePhone": lambda _, u: None,
    "officeLocation": lambda _, u: None,
    "preferredLanguage": lambda _, u: None,
    "accountEnabled": lambda _, u: u.account_enabled,
    "usageLocation": lambda _, u: u.usage_location,
    "department": lambda _, u: u.department,
    "jobTitle": lambda _, u: u.job_title,
    "companyName": lambda _, u: u.company_name,
    "employeeType": lambda _, u: u.employee_type,
    "country": lambda _, u: u.country,
    "createdDateTime": lambda _, u: u.created_date_time,
    "assignedLicenses": _assigned_licenses,
    "assignedPlans": _assigned_plans,
    "licenseAssignmentStates": _assignment_states,
    # Per service, the worst status of its enabled plans: https://learn.microsoft.com/graph/api/resources/user
    "provisionedPlans": lambda state, u: state.provisioned_plans(u),
}
_BY_LOWER = {name.lower(): name for name in _PROPERTIES}
ALL_PROPERTIES = tuple(_PROPERTIES)


def parse_select(raw: str | None) -> list[str] | None:
    """$select as canonical user property names (Graph matches them case-insensitively), None if absent."""
    return select_names(raw, _BY_LOWER, entity="microsoft.graph.user", code="Request_BadRequest")


def render_user(state: TenantState, user: User, select: Sequence[str] | None) -> dict[str, Any]:
    """A user as Graph returns it: the selected properties, or the default set without $select."""
    return {name: _PROPERTIES[name](state, user) for name in (select or DEFAULT_SELECT)}


def render_sku(state: TenantState, sku: Sku) -> dict[str, Any]:
    """One GET /subscribedSkus item."""
    return {
        "accountName": state.account_name,
        "accountId": state.tenant_id,
        "appliesTo": sku.applies_to,
        "capabilityStatus": sku.capability_status,
        "consumedUnits": state.consumed_units(sku.id),
        "id": f"{state.tenant_id}_{sku.id}",
        "prepaidUnits": {
            "enabled": sku.enabled,
            "lockedOut": sku.locked_out,
            "suspended": sku.suspended,
            "warning": sku.warning,
        },
        "servicePlans": [
            {
                "servicePlanId": p.id,
                "servicePlanName": p.name,
                "provisioningStatus": state.tenant_plan_status(p),
                "appliesTo": p.applies_to,
            }
            for p in sku.plans
        ],
        "skuId": sku.id,
        "skuPartNumber": sku.part_number,
        "subscriptionIds": [],
    }


def users_context(base_url: str, select: Sequence[str] | None, *, entity: bool) -> str:
    """@odata.context for users: ``$metadata#users(id,displayName)/$entity`` and its variants."""
    fragment = "users" + (f"({','.join(select)})" if select else "")
    return f"{base_url}/$metadata#{fragment}" + ("/$entity" if entity else "")
