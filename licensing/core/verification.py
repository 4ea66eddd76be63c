"""Pure verification: (expected license, observed plan states) -> verified / pending / failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from licensing.core.model import PENDING_STATUSES, ObservedLicense

Verdict = Literal["verified", "pending", "failed"]


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
    """The outcome for one SKU with a reason a person can act on."""

    sku_id: str
    part_number: str
    outcome: Verdict
    checks: tuple[PlanCheck, ...]
    reason: str

    def plan_statuses(self) -> dict[str, str]:
        """Plan name -> observed provisioning status."""
        return {c.name: c.status for c in self.checks}


def check_plan(plan_id: str, name: str, status: str, *, disabled: bool) -> PlanCheck:
    """Policy-disabled plans must be Disabled; every other plan must reach Success."""
    expected: Literal["Disabled", "Success"] = "Disabled" if disabled else "Success"
    if status == expected:
        verdict: Verdict = "verified"
    elif status in PENDING_STATUSES:  # Graph is still applying the change, whichever way it goes
        verdict = "pending"
    else:
        verdict = "failed"
    return PlanCheck(plan_id, name, expected, status, verdict)


def verify_license(expected: ExpectedLicense, observed: ObservedLicense | None) -> LicenseVerdict:
    """Classify one SKU. Any failed plan fails it; otherwise any pending plan keeps it pending."""
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
    failed = [c for c in checks if c.verdict == "failed"]
    pending = [c for c in checks if c.verdict == "pending"]
    if failed:
        detail = ", ".join(f"{c.name} is {c.status} (expected {c.expected})" for c in failed)
        return LicenseVerdict(expected.sku_id, expected.part_number, "failed", checks, detail)
    if pending:
        detail = ", ".join(f"{c.name} is {c.status}" for c in pending)
        return LicenseVerdict(expected.sku_id, expected.part_number, "pending", checks, detail)
    return LicenseVerdict(
        expected.sku_id, expected.part_number, "verified", checks, f"all {len(checks)} plans as expected"
    )
