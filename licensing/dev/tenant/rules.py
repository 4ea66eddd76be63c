"""Graph's rules for assignLicense and PATCH /users, with Graph's own refusal messages.

Checked against public captures of real responses: the missing-parameter, usage-location, no-seat,
unknown-SKU, group-inherited and "does not have a corresponding license" wordings appear verbatim in
issue threads and scripts that match on them. The unknown-disabled-plan wording is our best guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from licensing.dev.tenant.model import ISO_COUNTRIES, USER_FIELDS, Assignment, GraphError, Sku, User, guid

BAD_REQUEST = "Request_BadRequest"
INVALID_USAGE_LOCATION = "License assignment cannot be done for user with invalid usage location."
# PATCH may change these; createdDateTime is Graph's own and mail follows the mailbox
_WRITABLE = {k: v for k, v in USER_FIELDS.items() if k not in {"createdDateTime", "mail"}}
_READ_ONLY = {"id", "assignedLicenses", "assignedPlans", "licenseAssignmentStates", "createdDateTime"}


@dataclass(frozen=True, slots=True)
class LicenseChange:
    """A validated assignLicense request: the full disabled set per SKU to add, the SKUs to remove."""

    add: dict[str, list[str]]
    remove: list[str]


def require_parameters(
    add: Sequence[Mapping[str, Any]] | None, remove: Sequence[str] | None
) -> tuple[Sequence[Mapping[str, Any]], Sequence[str]]:
    """Both assignLicense keys, or Graph's refusal naming the missing ones (checked before the user)."""
    missing = [name for name, given in (("addLicenses", add), ("removeLicenses", remove)) if given is None]
    if add is None or remove is None:
        raise GraphError(
            400,
            BAD_REQUEST,
            "One or more parameters of the operation 'assignLicense' are missing from the request payload. "
            f"The missing parameters are: {', '.join(missing)}.",
        )
    return add, remove


def check_license_change(
    user: User,
    skus: Mapping[str, Sku],
    free_units: Callable[[str], int],
    add: Sequence[Mapping[str, Any]],
    remove: Sequence[str],
) -> LicenseChange:
    """Validate an assignLicense payload for a user, raising the GraphError Graph would return."""
    wanted = dict(_checked_add(item, skus) for item in add)
    removing = [guid(s) for s in remove]
    for sku_id in removing:
        if not user.holds(sku_id):
            raise GraphError(400, BAD_REQUEST, "User does not have a corresponding license.")
        if user.direct(sku_id) is None:
            raise GraphError(
                400,
                BAD_REQUEST,
                "User license is inherited from a group membership and it cannot be removed directly from the user.",
            )
    if wanted and not user.usage_location:
        raise GraphError(400, BAD_REQUEST, INVALID_USAGE_LOCATION)
    for sku_id in wanted:
        if not user.holds(sku_id) and free_units(sku_id) < 1:  # a SKU the user already has takes no new seat
            raise GraphError(400, BAD_REQUEST, f"Subscription {sku_id} does not have any available licenses.")
    return LicenseChange(wanted, removing)


def check_exclusive_plans(
    user: User, skus: Mapping[str, Sku], change: LicenseChange, pairs: Iterable[frozenset[str]]
) -> None:
    """Refuse a change that would newly give the user two mutually exclusive plans (by plan name), as
    https://learn.microsoft.com/graph/api/user-assignlicense does: "License assignment failed because
    service plans {a}, {b} are mutually exclusive." - {a} the plan being enabled, {b} the one it clashes
    with (Graph names them by servicePlanId; which comes first is our guess)."""
    pairs = list(pairs)
    if not pairs or not change.add:
        return
    before = _enabled_plans(user.assignments, skus)
    after = _enabled_plans(_after(user, change), skus)
    for pair in pairs:
        a, b = sorted(name.upper() for name in pair)
        if a in after and b in after and not (a in before and b in before):
            new, old = (a, b) if a not in before else (b, a)
            raise GraphError(
                400,
                BAD_REQUEST,
                f"License assignment failed because service plans {after[new]}, {after[old]} are mutually exclusive.",
            )


def _after(user: User, change: LicenseChange) -> list[Assignment]:
    """The user's assignments as the change would leave them (not applied)."""
    kept = [a for a in user.assignments if a.assigned_by_group or a.sku_id not in change.remove]
    kept = [a for a in kept if a.assigned_by_group or a.sku_id not in change.add]
    added = [Assignment(sku_id, disabled, None, assigned_at=0.0) for sku_id, disabled in change.add.items()]
    return kept + added


def _enabled_plans(assignments: Iterable[Assignment], skus: Mapping[str, Sku]) -> dict[str, str]:
    """Upper-case plan name -> plan id of every plan some assignment enables."""
    return {p.name.upper(): p.id for a in assignments for p in skus[a.sku_id].plans if p.id not in a.disabled_plans}


def apply_license_change(user: User, change: LicenseChange, now: float) -> None:
    """Apply a validated change: removals drop direct assignments; a re-posted SKU replaces its disabled set."""
    user.assignments = [a for a in user.assignments if a.assigned_by_group or a.sku_id not in change.remove]
    for sku_id, disabled in change.add.items():
        current = user.direct(sku_id)
        if current is None:
            user.assignments.append(Assignment(sku_id, disabled, None, assigned_at=now, updated_at=now))
            continue
        for plan_id in set(current.disabled_plans) - set(disabled):
            current.enabled_at[plan_id] = now  # switched back on: its provisioning starts again
        current.disabled_plans = disabled
        current.updated_at = now


def _checked_add(item: Mapping[str, Any], skus: Mapping[str, Sku]) -> tuple[str, list[str]]:
    sku_id = guid(item.get("skuId"))
    disabled = list(dict.fromkeys(guid(p) for p in item.get("disabledPlans") or []))
    sku = skus.get(sku_id)
    if sku is None or sku.applies_to != "User":
        raise GraphError(400, BAD_REQUEST, f"License {sku_id} does not correspond to a valid company License.")
    unknown = [p for p in disabled if sku.plan(p) is None]
    if unknown:
        raise GraphError(
            400, BAD_REQUEST, f"The disabled service plan(s) {', '.join(unknown)} do not belong to license {sku_id}."
        )
    return sku_id, disabled


def user_changes(patch: Mapping[str, Any]) -> dict[str, Any]:
    """User fields to set from a PATCH /users body, or Graph's refusal of the whole body."""
    changes: dict[str, Any] = {}
    for key, value in patch.items():
        if key.startswith("@"):  # "@odata.type", which the SDK sends along
            continue
        if key in _READ_ONLY:
            raise GraphError(400, BAD_REQUEST, f"Property '{key}' is read-only and cannot be set.")
        if key not in _WRITABLE:
            raise GraphError(
                400, BAD_REQUEST, f"Property '{key}' does not exist as a declared property or extension property."
            )
        changes[_WRITABLE[key]] = _checked_value(key, value)
    return changes


def _checked_value(key: str, value: Any) -> Any:  # noqa: ANN401  # a JSON value of any type
    invalid = GraphError(400, BAD_REQUEST, f"Invalid value specified for property '{key}' of resource 'User'.")
    if key == "usageLocation":
        if value is None:
            return None
        if not isinstance(value, str) or value.upper() not in ISO_COUNTRIES:
            raise invalid
        return value.upper()
    if key == "accountEnabled":
        if not isinstance(value, bool):
            raise invalid
        return value
    if value is not None and not isinstance(value, str):
        raise invalid
    return value
