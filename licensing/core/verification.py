"""Pure verification: (expected license, observed plan states) -> verified / pending / action-required / failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from licensing.core.model import ADMIN_STATUSES, SETTLING_STATUSES, HeldLicense, ObservedLicense

# pending: settling by itself, check again; action-required: an admin must act, checking again will not help.
Verdict = Literal["verified", "pending", "action-required", "failed"]
SEVERITY: tuple[Verdict, ...] = ("failed", "action-required", "pending", "verified")  # worst first

# What an admin does about each admin-pending status.
# https://learn.microsoft.com/graph/api/resources/serviceplaninfo (provisioningStatus)
_FIX = {
    "PendingActivation": (
        "an admin must activate the service in the Microsoft 365 admin center, then run `licensing verify {user}`"
    ),
    "PendingProvisioning": (
        "a plan Microsoft added to the SKU is not activated in this tenant: activate it in the Microsoft 365 admin "
        "center, or disable it in the rule's disabledPlans (and list it in reviewedPlans), then run "
        "`licensing verify {user}`"
    ),
}


@dataclass(frozen=True, slots=True)
class ExpectedLicense:
    """What the last assignment asked for."""

    sku_id: str
    part_number: str
    disabled_plan_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class PlanCheck:
    """One plan: what we expected, what Graph shows, and the verdict."""

    plan_id: str
    name: str
    expected: Literal["Disabled", "Success"]
    status: str
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class LicenseVerdict:
    """The outcome for one SKU with a reason a person can act on; ``source`` is where plan states were read."""

    sku_id: str
    part_number: str
    outcome: Verdict
    checks: tuple[PlanCheck, ...]
    reason: str
    source: str = ""

    def plan_statuses(self) -> dict[str, str]:
        """Plan name -> observed provisioning status."""
        return {c.name: c.status for c in self.checks}


def check_plan(plan_id: str, name: str, status: str, *, disabled: bool) -> PlanCheck:
    """Policy-disabled plans must be Disabled; every other plan must reach Success."""
    expected: Literal["Disabled", "Success"] = "Disabled" if disabled else "Success"
    if status == expected:
        verdict: Verdict = "verified"
    elif status in SETTLING_STATUSES:  # Graph is still applying the change, whichever way it goes
        verdict = "pending"
    elif status in ADMIN_STATUSES:  # waits for an admin, not for time
        verdict = "action-required"
    else:
        verdict = "failed"
    return PlanCheck(plan_id, name, expected, status, verdict)


def verify_license(
    expected: ExpectedLicense, observed: ObservedLicense | None, *, user: str = "USER"
) -> LicenseVerdict:
    """Classify one SKU: failed outranks action-required outranks pending. ``user`` goes into the fix we name."""
    if observed is None:
        return LicenseVerdict(
            expected.sku_id,
            expected.part_number,
            "failed",
            (),
            f"{expected.part_number} is not assigned to the user (removed after assignment?)",
        )
    checks = tuple(
        check_plan(p.plan_id, p.name, p.status, disabled=p.plan_id.lower() in expected.disabled_plan_ids)
        for p in observed.plans
    )
    outcome: Verdict = next((v for v in SEVERITY if any(c.verdict == v for c in checks)), "verified")
    worst = [c for c in checks if c.verdict == outcome]
    if outcome == "failed":
        detail = ", ".join(f"{c.name} is {c.status} (expected {c.expected})" for c in worst)
    elif outcome == "action-required":
        detail = "; ".join(f"{c.name} is {c.status}: {_FIX[c.status].format(user=user)}" for c in worst)
    elif outcome == "pending":
        detail = ", ".join(f"{c.name} is {c.status}" for c in worst)
    else:
        detail = f"all {len(checks)} plans as expected"
    reason = f"{detail} (plan states from {observed.source})"
    return LicenseVerdict(expected.sku_id, expected.part_number, outcome, checks, reason, observed.source)


def group_failure_verdict(expected: ExpectedLicense, held: HeldLicense) -> LicenseVerdict:
    """A SKU the user should get from a group whose assignment Graph holds in error: an admin must fix the group."""
    return LicenseVerdict(
        expected.sku_id, expected.part_number, "action-required", (), group_failure_reason(expected.part_number, held)
    )


def group_failure_reason(part_number: str, held: HeldLicense) -> str:
    """``EMS via group G is in error (CountViolation): ...`` with what to do about it."""
    return (
        f"{part_number} via group {held.assigned_by_group} is in error ({held.error or 'no error code'}, state "
        f"{held.state}): the group does not license this user; fix the group's license assignment in the Microsoft "
        "365 admin center (free seats, resolve conflicting plans), or set assignDirectlyWhenGroupFails on the rule"
    )
