"""Pure planning: (user facts, tenant catalog, policy) -> the licenses to assign. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from licensing.core.errors import PolicyError, SeatsExhausted, UsageLocationMissing
from licensing.core.model import Catalog, HeldLicense, UserFacts
from licensing.core.policy import LicenseSpec, Policy, Rule


@dataclass(frozen=True, slots=True)
class DesiredLicense:
    """A SKU the user should hold directly, with exactly these plans disabled."""

    sku_id: str
    part_number: str
    disabled_plan_ids: frozenset[str]
    disabled_plan_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LicenseChange:
    """One entry of ``addLicenses``: ``before`` is None when the user does not hold the SKU yet."""

    desired: DesiredLicense
    before: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Removal:
    """One entry of ``removeLicenses``: a SKU the app manages that the user should no longer hold."""

    sku_id: str
    part_number: str
    disabled_before: frozenset[str]


@dataclass(frozen=True, slots=True)
class GroupFailure:
    """A SKU the user should hold that only a group assignment in error provides (so nobody licenses the user)."""

    desired: DesiredLicense
    held: HeldLicense


@dataclass(frozen=True, slots=True)
class AssignmentPlan:
    """What onboarding will do for one user."""

    rule: str
    desired: tuple[DesiredLicense, ...]
    changes: tuple[LicenseChange, ...]
    usage_location: str | None
    held_by_group: tuple[DesiredLicense, ...] = ()
    removals: tuple[Removal, ...] = ()
    group_failed: tuple[GroupFailure, ...] = ()  # left to an admin (the rule does not assign directly instead)
    group_bypassed: tuple[GroupFailure, ...] = ()  # assigned directly instead (assignDirectlyWhenGroupFails)

    @property
    def no_op(self) -> bool:
        """True when the user already matches the policy."""
        return not self.changes and not self.removals and self.usage_location is None

    @property
    def managed(self) -> tuple[DesiredLicense, ...]:
        """The licenses this app assigns directly (not those a group provides, or should but is in error)."""
        failed = {f.desired for f in self.group_failed}
        return tuple(d for d in self.desired if d not in self.held_by_group and d not in failed)


def resolve(spec: LicenseSpec, catalog: Catalog, *, rule: str) -> DesiredLicense:
    """Resolve part number and plan names to ids; PolicyError lists what the tenant has."""
    sku = catalog.by_part_number(spec.sku)
    if sku is None:
        have = ", ".join(sorted(s.part_number for s in catalog.skus)) or "no SKUs"
        raise PolicyError(
            f"policy rule {rule!r} names SKU {spec.sku!r}, which this tenant does not subscribe to; "
            f"the tenant has: {have}"
        )
    ids: set[str] = set()
    names: list[str] = []
    for name in spec.disabled_plans:
        plan = sku.plan_named(name)
        if plan is None:
            have = ", ".join(sorted(p.name for p in sku.plans))
            raise PolicyError(
                f"policy rule {rule!r} disables plan {name!r}, which SKU {sku.part_number} does not contain; "
                f"{sku.part_number} has: {have}"
            )
        ids.add(plan.id.lower())
        names.append(plan.name)
    return DesiredLicense(sku.id.lower(), sku.part_number, frozenset(ids), tuple(sorted(names)))


def rule_specs(rule: Rule, policy: Policy) -> tuple[LicenseSpec, ...]:
    """The rule's SKUs plus their companions (transitively), unresolved; a SKU named twice keeps its first spec."""
    specs: list[LicenseSpec] = []
    seen: set[str] = set()
    pending = list(rule.licenses)
    while pending:
        spec = pending.pop(0)
        if spec.sku.casefold() in seen:
            continue
        seen.add(spec.sku.casefold())
        specs.append(spec)
        pending.extend(policy.companions_of(spec.sku))
    return tuple(specs)


def desired_licenses(rule: Rule, policy: Policy, catalog: Catalog) -> tuple[DesiredLicense, ...]:
    """The rule's SKUs plus their companions, resolved; a SKU named twice keeps its first spec."""
    return tuple(resolve(s, catalog, rule=rule.name) for s in rule_specs(rule, policy))


def plan_assignment(
    user: UserFacts,
    policy: Policy,
    catalog: Catalog,
    *,
    attributes: Mapping[str, str] | None = None,
    usage_location: str | None = None,
    owned: frozenset[str] = frozenset(),
) -> AssignmentPlan:
    """Decide what to assign. Request attributes override the user's directory attributes. ``owned`` are
    the SKU ids this app assigned to the user earlier: those the rule no longer gives are removed (a mover).

    Raises PolicyError (no rule matches, or a name does not resolve), UsageLocationMissing and
    SeatsExhausted (a new SKU has no free seat: companions are all-or-nothing, so nothing is assigned).
    """
    facts = {**user.attributes, **{k: v for k, v in (attributes or {}).items() if v}}
    rule = policy.rule_for(facts)
    if rule is None:
        shown = ", ".join(f"{k}={facts[k]!r}" for k in sorted(facts) if facts[k]) or "no attributes"
        raise PolicyError(f'no policy rule matches this user ({shown}); add a rule or an "all" rule')
    fallback = usage_location or rule.usage_location or policy.default_usage_location
    desired = desired_licenses(rule, policy, catalog)
    plan = plan_changes(
        user,
        desired,
        catalog,
        rule=rule.name,
        usage_location=fallback,
        direct_when_group_fails=rule.assign_directly_when_group_fails,
    )
    wanted = {d.sku_id for d in desired}
    # A mover: SKUs the policy hands out (so this app manages them) that the new rule no longer gives.
    removals = tuple(r for r in plan_removals(user, owned, catalog) if r.sku_id not in wanted)
    return replace(plan, removals=removals)


def policy_part_numbers(policy: Policy) -> tuple[str, ...]:
    """Every part number any rule or companion names, deduplicated case-insensitively, in policy order."""
    names = [spec.sku for rule in policy.rules for spec in rule.licenses]
    names += [n for c in policy.companions for n in (c.sku, *(spec.sku for spec in c.requires))]
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.casefold(), name)
    return tuple(seen.values())


def managed_sku_ids(policy: Policy, catalog: Catalog) -> frozenset[str]:
    """Ids of every SKU the policy names (rules and companions): the SKUs this app owns."""
    found = (catalog.by_part_number(name) for name in policy_part_numbers(policy))
    return frozenset(sku.id.lower() for sku in found if sku is not None)


def plan_removals(user: UserFacts, owned: frozenset[str], catalog: Catalog) -> tuple[Removal, ...]:
    """The user's direct assignments of SKUs this app assigned (``owned``): what a leaver loses.

    Group-based assignments and licenses someone else assigned (an admin's hand-made exception) stay.
    """
    removals = []
    for held in user.licenses:
        if held.assigned_by_group is None and held.sku_id.lower() in owned:
            sku = catalog.by_id(held.sku_id)
            part = sku.part_number if sku else held.sku_id
            removals.append(Removal(held.sku_id.lower(), part, frozenset(p.lower() for p in held.disabled_plans)))
    return tuple(removals)


def plan_changes(
    user: UserFacts,
    desired: tuple[DesiredLicense, ...],
    catalog: Catalog,
    *,
    rule: str,
    usage_location: str | None,
    direct_when_group_fails: bool = False,
) -> AssignmentPlan:
    """Compare desired licenses with the user's direct ones; ``usage_location`` is used only if the user has none.

    A SKU that only a group assignment in error would provide licenses nobody: it is left to an admin
    (``group_failed``), or assigned directly when ``direct_when_group_fails`` (the rule's
    assignDirectlyWhenGroupFails). Raises UsageLocationMissing and SeatsExhausted (all-or-nothing across ``desired``).
    """
    by_group = tuple(d for d in desired if user.direct(d.sku_id) is None and user.via_group(d.sku_id))
    group_failed = tuple(
        GroupFailure(d, failure)
        for d in desired
        if d not in by_group and user.direct(d.sku_id) is None and (failure := user.group_failure(d.sku_id))
    )
    left_to_admin = () if direct_when_group_fails else tuple(f.desired for f in group_failed)
    changes: list[LicenseChange] = []
    for want in desired:
        if want in by_group or want in left_to_admin:
            continue  # group-based licensing owns it; a direct copy would only fight the group
        held = user.direct(want.sku_id)
        before = frozenset(p.lower() for p in held.disabled_plans) if held else None
        if before != want.disabled_plan_ids:
            changes.append(LicenseChange(want, before))
    new_location = None
    if changes and not user.usage_location:
        new_location = usage_location
        if new_location is None:
            raise UsageLocationMissing(
                f"{user.user_principal_name} has no usage location and neither the request, rule "
                f"{rule!r} nor the policy's defaultUsageLocation gives one; set one of them"
            )
    short = [c.desired.part_number for c in changes if c.before is None and _free(catalog, c.desired) <= 0]
    if short:
        raise SeatsExhausted(
            f"no free seats for {', '.join(short)}; nothing assigned to {user.user_principal_name} "
            f"(SKUs of rule {rule!r} are assigned together or not at all)",
            part_numbers=tuple(short),
        )
    return AssignmentPlan(
        rule,
        desired,
        tuple(changes),
        new_location,
        by_group,
        group_failed=() if direct_when_group_fails else group_failed,
        group_bypassed=group_failed if direct_when_group_fails else (),
    )


def _free(catalog: Catalog, want: DesiredLicense) -> int:
    sku = catalog.by_id(want.sku_id)
    return sku.free if sku else 0
