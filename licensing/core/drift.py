"""Pure drift assessment for the sweep: (user, policy resolved against the catalog) -> what is wrong, and the fix."""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from licensing.core.errors import PolicyError
from licensing.core.model import Catalog, UserFacts
from licensing.core.planning import DesiredLicense, desired_licenses, managed_sku_ids
from licensing.core.policy import Policy

DriftKind = Literal[
    "missing-license",
    "wrong-disabled-plans",
    "usage-location-missing",
    "reclaim",
    "group-assigned",
    "companion-missing",
    "extra-license",
    "provisioning-error",
    "provisioning-stuck",
    "needs-admin",
    "device-limit",
    "no-rule",
    "policy-error",
]
DRIFT_KINDS: tuple[DriftKind, ...] = DriftKind.__args__  # type: ignore[attr-defined]
Fix = Literal["assign", "remove"]
# A user license for Intune covers up to 15 managed devices (Microsoft's Intune licensing guidance, as MSOnline
# reported it); the plans that carry Intune for a user, whichever SKU they come in.
DEVICES_PER_LICENSE = 15
INTUNE_PLANS = frozenset({"INTUNE_A", "INTUNE_EDU"})


@dataclass(frozen=True, slots=True)
class Drift:
    """One thing wrong with one user; ``fix`` is the request that repairs it (None: report only)."""

    kind: DriftKind
    sku: str
    detail: str
    fix: Fix | None


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """The policy resolved once per sweep: desired licenses per rule (or why a rule cannot resolve)."""

    policy: Policy
    catalog: Catalog
    desired: Mapping[str, tuple[DesiredLicense, ...] | str]
    companions: Mapping[str, frozenset[str]]  # rule -> part numbers that are only companions
    managed: frozenset[str]
    intune: Mapping[str, frozenset[str]] = field(default_factory=dict)  # SKU id -> its Intune plan ids

    @classmethod
    def build(cls, policy: Policy, catalog: Catalog) -> ResolvedPolicy:
        """Resolve every rule; a rule naming something the tenant lacks keeps its error message instead."""
        desired: dict[str, tuple[DesiredLicense, ...] | str] = {}
        companions: dict[str, frozenset[str]] = {}
        for rule in policy.rules:
            try:
                desired[rule.name] = desired_licenses(rule, policy, catalog)
            except PolicyError as exc:
                desired[rule.name] = exc.message
            primary = {s.sku.casefold() for s in rule.licenses}
            companions[rule.name] = (
                frozenset(spec.sku.casefold() for s in rule.licenses for spec in policy.companions_of(s.sku)) - primary
            )
        intune = {s.id: frozenset(p.id for p in s.plans if p.name.upper() in INTUNE_PLANS) for s in catalog.skus}
        managed = managed_sku_ids(policy, catalog)
        return cls(policy, catalog, desired, companions, managed, {k: v for k, v in intune.items() if v})


def assess(user: UserFacts, resolved: ResolvedPolicy) -> tuple[Drift, ...]:  # one branch per kind
    """Everything wrong with one user's licenses, relative to the policy."""
    direct_managed = [h for h in user.licenses if h.assigned_by_group is None and h.sku_id in resolved.managed]
    if not user.account_enabled:
        # A disabled account (a leaver HR never told us about) holding seats: give them back.
        return tuple(
            Drift("reclaim", _part(resolved, h.sku_id), "account disabled, license still assigned", "remove")
            for h in direct_managed
        )
    rule = resolved.policy.rule_for(user.attributes)
    if rule is None:
        return tuple(
            Drift("no-rule", _part(resolved, h.sku_id), "holds a managed SKU but no rule matches", None)
            for h in direct_managed
        )
    desired = resolved.desired[rule.name]
    if isinstance(desired, str):
        return (Drift("policy-error", "", desired, None),)
    drifts: list[Drift] = []
    wanted = {d.sku_id for d in desired}
    for want in desired:
        held = user.direct(want.sku_id)
        if held is None and user.via_group(want.sku_id):
            drifts.append(Drift("group-assigned", want.part_number, "held through a group; left to the group", None))
        elif held is None:
            if want.part_number.casefold() in resolved.companions[rule.name]:
                drifts.append(
                    Drift("companion-missing", want.part_number, f"rule {rule.name!r} needs it too", "assign")
                )
            elif not user.usage_location:
                drifts.append(
                    Drift("usage-location-missing", want.part_number, "unlicensed, no usage location", "assign")
                )
            else:
                drifts.append(Drift("missing-license", want.part_number, f"rule {rule.name!r} gives it", "assign"))
        elif {p.lower() for p in held.disabled_plans} != want.disabled_plan_ids:
            detail = _plans_detail(resolved, want, held.disabled_plans)
            drifts.append(Drift("wrong-disabled-plans", want.part_number, detail, "assign"))
    drifts.extend(
        Drift("extra-license", _part(resolved, held.sku_id), f"rule {rule.name!r} does not give it", "assign")
        for held in direct_managed
        if held.sku_id not in wanted
    )
    return tuple(drifts)


def device_limit(user: UserFacts, devices: int, resolved: ResolvedPolicy) -> Drift | None:
    """Report-only ``device-limit`` when the user's managed devices exceed 15 per license with Intune enabled."""
    licensed = [
        _part(resolved, held.sku_id)
        for held in user.licenses
        if resolved.intune.get(held.sku_id, frozenset()) - {p.lower() for p in held.disabled_plans}
    ]
    limit = DEVICES_PER_LICENSE * len(licensed)
    if devices <= limit:
        return None
    covered = f"{len(licensed)} Intune license(s) ({', '.join(licensed)})" if licensed else "no Intune license"
    detail = f"{devices} managed devices, {covered} cover {limit}: license more or retire devices"
    return Drift("device-limit", "", detail, None)


class DeviceTally:
    """Managed devices per user id, in about 10 bytes per user with a device (a dict of id strings would take
    ~140): open addressing on the id's 64-bit hash in two flat arrays, half full at most. A collision of two
    users' hashes (odds about n^2 / 2^65) would only merge their counts. Counts stop at 65,535."""

    def __init__(self) -> None:
        self._keys = array("q", [0]) * 1024
        self._counts = array("H", [0]) * 1024
        self.users = 0
        self.devices = 0

    def add(self, user_id: str) -> None:
        """Count one device of this user."""
        key = _key(user_id)
        slot = self._slot(key)
        if not self._keys[slot]:
            self._keys[slot] = key
            self.users += 1
        self._counts[slot] = min(self._counts[slot] + 1, 0xFFFF)
        self.devices += 1
        if self.users * 2 > len(self._keys):
            self._grow()

    def count(self, user_id: str) -> int:
        """Devices counted for this user (0 if none)."""
        slot = self._slot(_key(user_id))
        return self._counts[slot] if self._keys[slot] else 0

    def _slot(self, key: int) -> int:
        keys, mask = self._keys, len(self._keys) - 1
        slot = key & mask
        while keys[slot] and keys[slot] != key:
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        keys, counts = self._keys, self._counts
        self._keys, self._counts = array("q", [0]) * (2 * len(keys)), array("H", [0]) * (2 * len(keys))
        for key, count in zip(keys, counts, strict=True):
            if key:
                slot = self._slot(key)
                self._keys[slot], self._counts[slot] = key, count


def _key(user_id: str) -> int:
    return hash(user_id.lower()) or 1  # 0 marks an empty slot; str hashes are stable within one process


def fix_for(drifts: tuple[Drift, ...]) -> Fix | None:
    """One request per user: removal wins (a disabled account), else an assignment when anything is fixable."""
    fixes = {d.fix for d in drifts}
    return "remove" if "remove" in fixes else "assign" if "assign" in fixes else None


def _part(resolved: ResolvedPolicy, sku_id: str) -> str:
    sku = resolved.catalog.by_id(sku_id)
    return sku.part_number if sku else sku_id


def _plans_detail(resolved: ResolvedPolicy, want: DesiredLicense, held: frozenset[str]) -> str:
    sku = resolved.catalog.by_id(want.sku_id)
    names = {p.id: p.name for p in sku.plans} if sku else {}
    have = {p.lower() for p in held}
    extra_on = sorted(names.get(p, p) for p in want.disabled_plan_ids - have)
    extra_off = sorted(names.get(p, p) for p in have - want.disabled_plan_ids)
    parts = [f"should be disabled: {', '.join(extra_on)}"] if extra_on else []
    parts += [f"should be enabled: {', '.join(extra_off)}"] if extra_off else []
    return "; ".join(parts)
