"""Pure checks behind `licensing policy check`: every name resolved, unreviewed plans, what-if per user.

A service plan Microsoft adds to a SKU later arrives *enabled* for everyone holding that SKU (a disabled set
names only what it disables). So besides resolving names, the check lists, per SKU the policy assigns,
the plans that neither a disabledPlans list nor ``reviewedPlans`` mentions: those need a decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from licensing.core.errors import PolicyError, SeatsExhausted, UsageLocationMissing
from licensing.core.model import Catalog, UserFacts
from licensing.core.planning import plan_assignment, resolve
from licensing.core.policy import LicenseSpec, Policy


@dataclass(frozen=True, slots=True)
class UnreviewedPlans:
    """Plans of a SKU the policy assigns that it never mentions (enabled for every rule that assigns it)."""

    sku: str
    plans: tuple[str, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """Errors stop the policy from working; warnings need an admin's decision."""

    errors: tuple[str, ...]
    unreviewed: tuple[UnreviewedPlans, ...]
    warnings: tuple[str, ...]


def _specs(policy: Policy) -> list[tuple[str, bool, LicenseSpec]]:
    """Every (label, from a rule?, spec): rule licenses, then companion SKUs with what they require."""
    found = [(rule.name, True, spec) for rule in policy.rules for spec in rule.licenses]
    for companion in policy.companions:
        label = f"companions.{companion.sku}"
        found += [(label, False, LicenseSpec(sku=companion.sku)), *((label, False, s) for s in companion.requires)]
    return found


def check_against(policy: Policy, catalog: Catalog) -> PolicyReport:
    """Resolve every SKU and plan name (all problems, not the first) and find unreviewed plans."""
    errors: list[str] = []
    mentioned: dict[str, set[str]] = {}
    rules: dict[str, list[str]] = {}
    for label, from_rule, spec in _specs(policy):
        try:
            desired = resolve(spec, catalog, rule=label)
        except PolicyError as exc:
            if exc.message not in errors:
                errors.append(exc.message)
            continue
        mentioned.setdefault(desired.part_number, set()).update(desired.disabled_plan_names)
        users_of = rules.setdefault(desired.part_number, [])
        if from_rule and label not in users_of:
            users_of.append(label)
    warnings: list[str] = []
    unreviewed: list[UnreviewedPlans] = []
    for part, names in sorted(mentioned.items()):
        sku = catalog.by_part_number(part)
        if sku is None:  # pragma: no cover  # resolve() found it a moment ago
            continue
        reviewed = _reviewed(policy, part)
        stale = sorted(n for n in reviewed if sku.plan_named(n) is None)
        if stale:
            warnings.append(f"reviewedPlans.{part} names {', '.join(stale)}, which {part} no longer contains")
        known = {n.casefold() for n in reviewed}
        new = tuple(sorted(p.name for p in sku.plans if p.name not in names and p.name.casefold() not in known))
        if new:
            unreviewed.append(UnreviewedPlans(part, new, tuple(rules[part])))
    warnings.extend(
        f"reviewedPlans names SKU {key!r}, which this tenant does not subscribe to"
        for key in sorted(policy.reviewed_plans)
        if catalog.by_part_number(key) is None
    )
    return PolicyReport(tuple(errors), tuple(unreviewed), tuple(warnings))


def _reviewed(policy: Policy, part: str) -> set[str]:
    return {n for key, plans in policy.reviewed_plans.items() if key.casefold() == part.casefold() for n in plans}


@dataclass(frozen=True, slots=True)
class WhatIf:
    """What onboarding would do to one user now (nothing is sent)."""

    user: str
    rule: str
    action: str
    detail: str


def what_if(user: UserFacts, policy: Policy, catalog: Catalog) -> WhatIf:
    """Onboarding's plan for ``user``, or why it would stop; earlier assignments' removals are not shown."""
    upn = user.user_principal_name
    rule = policy.rule_for(user.attributes)
    name = rule.name if rule else "-"
    if not user.account_enabled:
        return WhatIf(upn, name, "skip", "account disabled; disabled accounts are not licensed")
    try:
        plan = plan_assignment(user, policy, catalog)
    except SeatsExhausted as exc:
        return WhatIf(upn, name, "blocked", exc.message)
    except (PolicyError, UsageLocationMissing) as exc:
        return WhatIf(upn, name, "reject", exc.message)
    grouped = [f"{d.part_number} via group" for d in plan.held_by_group]
    if plan.no_op:
        return WhatIf(upn, plan.rule, "none", "; ".join(["already matches", *grouped]))
    parts = []
    if plan.usage_location:
        parts.append(f"set usageLocation {plan.usage_location}")
    for change in plan.changes:
        disabled = ", ".join(change.desired.disabled_plan_names) or "none"
        verb = "assign" if change.before is None else "change"
        parts.append(f"{verb} {change.desired.part_number} (disabled: {disabled})")
    return WhatIf(upn, plan.rule, "assign", "; ".join(parts + grouped))
