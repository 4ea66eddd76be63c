"""Graph JSON (users, subscribedSkus, licenseDetails) as plain data. Pure: the raw-read paths parse with the
json module and these functions, because the SDK's typed models cost milliseconds per user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from licensing.core.model import HeldLicense, ObservedLicense, PlanState, ServicePlan, Sku, UserFacts


def odata_key(user: str) -> str:
    """``('$adm@contoso.com')``: a user reference as an OData string key, ``'`` doubled, then URL-escaped.

    https://learn.microsoft.com/graph/api/user-get: a UPN starting with ``$`` must be addressed as
    ``/users('$x@contoso.com')``; ``/users/$x@contoso.com`` is read as a system query option and refused.
    """
    literal = "'" + user.replace("'", "''") + "'"
    return "(" + quote(literal, safe="$@'!~-._") + ")"


def observed_from_json(body: Mapping[str, Any]) -> tuple[ObservedLicense, ...]:
    """A licenseDetails collection as observed plan states."""
    return tuple(
        ObservedLicense(
            str(d.get("skuId", "")).lower(),
            str(d.get("skuPartNumber", "")),
            tuple(
                PlanState(
                    str(p.get("servicePlanId", "")).lower(),
                    str(p.get("servicePlanName", "")),
                    str(p.get("provisioningStatus", "")),
                )
                for p in d.get("servicePlans") or []
            ),
        )
        for d in body.get("value") or []
    )


def sku_from_json(data: Mapping[str, Any]) -> Sku:
    """One subscribedSkus item as a Sku. Pure."""
    prepaid = data.get("prepaidUnits") or {}
    return Sku(
        id=str(data.get("skuId", "")).lower(),
        part_number=str(data.get("skuPartNumber", "")),
        plans=tuple(
            ServicePlan(
                str(p.get("servicePlanId", "")).lower(),
                str(p.get("servicePlanName", "")),
                str(p.get("appliesTo") or "User"),
            )
            for p in data.get("servicePlans") or []
        ),
        enabled=int(prepaid.get("enabled") or 0),
        consumed=int(data.get("consumedUnits") or 0),
        suspended=int(prepaid.get("suspended") or 0),
        applies_to=str(data.get("appliesTo") or "User"),
        warning=int(prepaid.get("warning") or 0),
    )


def user_from_json(data: Mapping[str, Any]) -> UserFacts:
    """A Graph user JSON object (as selected by SWEEP_SELECT) as UserFacts. Pure."""
    attributes = {
        key: str(data[key])
        for key in ("department", "jobTitle", "companyName", "employeeType", "country")
        if data.get(key)
    }
    states = data.get("licenseAssignmentStates") or []
    if states:
        held = tuple(
            HeldLicense(
                str(s.get("skuId", "")).lower(),
                frozenset(str(p).lower() for p in s.get("disabledPlans") or []),
                str(s["assignedByGroup"]) if s.get("assignedByGroup") else None,
                state=str(s.get("state") or "Active"),
                # Graph writes "None" (a string) when there is no error
                error=str(s["error"]) if s.get("error") and s.get("error") != "None" else None,
            )
            for s in states
        )
    else:
        held = tuple(
            HeldLicense(
                str(a.get("skuId", "")).lower(), frozenset(str(p).lower() for p in a.get("disabledPlans") or [])
            )
            for a in data.get("assignedLicenses") or []
        )
    return UserFacts(
        id=str(data.get("id", "")),
        user_principal_name=str(data.get("userPrincipalName") or data.get("id", "")),
        usage_location=data.get("usageLocation") or None,
        account_enabled=data.get("accountEnabled") is not False,
        attributes=attributes,
        licenses=held,
    )
