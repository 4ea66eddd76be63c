"""Reads a tenant seed (the shipped fixture.json or a dict of the same shape) into model records.

The seed is written in Graph's own vocabulary: ``subscribedSkus`` entries look like GET /subscribedSkus
items, ``users`` like GET /users items, and each user's ``licenses`` like licenseAssignmentStates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from licensing.dev.tenant.model import USER_FIELDS, Assignment, ServicePlan, Sku, guid, parse_iso


def read_seed(source: str | Path | Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The seed as a mapping: a path to JSON, a ready mapping, or None for the shipped fixture."""
    if source is None:
        text = resources.files("licensing.dev.tenant").joinpath("fixture.json").read_text(encoding="utf-8")
        loaded: Mapping[str, Any] = json.loads(text)
        return loaded
    if isinstance(source, Mapping):
        return source
    parsed: Mapping[str, Any] = json.loads(Path(source).read_text(encoding="utf-8"))
    return parsed


def sku_from_json(item: Mapping[str, Any]) -> Sku:
    """One subscribedSkus entry as a Sku."""
    units = item.get("prepaidUnits") or {}
    return Sku(
        id=guid(item["skuId"]),
        part_number=str(item["skuPartNumber"]),
        plans=[
            ServicePlan(
                id=guid(p["servicePlanId"]),
                name=str(p["servicePlanName"]),
                applies_to=str(p.get("appliesTo", "User")),
                service=str(p.get("service", "")),
            )
            for p in item.get("servicePlans") or []
        ],
        enabled=int(units.get("enabled", 0)),
        suspended=int(units.get("suspended", 0)),
        warning=int(units.get("warning", 0)),
        locked_out=int(units.get("lockedOut", 0)),
        applies_to=str(item.get("appliesTo", "User")),
        capability_status=str(item.get("capabilityStatus", "Enabled")),
    )


def user_fields(item: Mapping[str, Any], skus: Mapping[str, Sku], *, now: float) -> dict[str, Any]:
    """Keyword arguments for ``TenantState.add_user`` from one seed user.

    Licenses in a seed are taken as already assigned (no seat or usage-location checks): a seed
    describes how the tenant *is*. Without ``assignedDateTime`` they count as assigned 30 days ago.
    """
    fields: dict[str, Any] = {
        "user_principal_name": str(item["userPrincipalName"]),
        "display_name": str(item.get("displayName") or item["userPrincipalName"]),
        "id": guid(item["id"]) if item.get("id") else None,
    }
    for key, name in USER_FIELDS.items():
        if key in item:
            fields[name] = item[key]
    if fields.get("usage_location"):
        fields["usage_location"] = str(fields["usage_location"]).upper()
    fields["assignments"] = [_assignment(lic, skus, now=now) for lic in item.get("licenses") or []]
    return fields


def _assignment(lic: Mapping[str, Any], skus: Mapping[str, Sku], *, now: float) -> Assignment:
    sku_id = guid(lic["skuId"])
    sku = skus.get(sku_id)
    if sku is None:
        raise ValueError(f"seed license names SKU {sku_id}, which the seed does not subscribe to")
    disabled = [guid(p) for p in lic.get("disabledPlans") or []]
    unknown = [p for p in disabled if sku.plan(p) is None]
    if unknown:
        raise ValueError(f"seed disables plans {unknown} that SKU {sku.part_number} does not have")
    when = lic.get("assignedDateTime")
    assigned_at = parse_iso(str(when)) if when else now - 30 * 86400
    group = lic.get("assignedByGroup")
    return Assignment(
        sku_id=sku_id,
        disabled_plans=disabled,
        assigned_by_group=guid(group) if group else None,
        assigned_at=assigned_at,
        updated_at=assigned_at,
        error=str(lic.get("error") or "None"),
    )
