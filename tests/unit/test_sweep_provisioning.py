"""The sweep's provisioning assessment: errors, plans waiting for an admin, plans still settling past the deadline."""

from datetime import UTC, datetime, timedelta

from licensing.core.drift import ResolvedPolicy
from licensing.core.model import ObservedLicense, PlanState
from licensing.core.policy import parse_policy
from licensing.core.records import StatusRecord
from licensing.services.sweep_provisioning import assess_provisioning
from tests.unit.catalog import EMS, EMS_PLANS, catalog

POLICY = parse_policy({"rules": [{"name": "all", "match": "all", "licenses": [{"sku": "EMS"}]}]})
RESOLVED = ResolvedPolicy.build(POLICY, catalog())
NOW = datetime(2026, 3, 2, tzinfo=UTC)
DEADLINE = timedelta(hours=24)
LONG_AGO = NOW - timedelta(days=3)


def ems(**statuses: str) -> dict[str, ObservedLicense]:
    """EMS observed with every plan Success except the ones named."""
    plans = tuple(PlanState(p.id, p.name, statuses.get(p.name, "Success")) for p in EMS_PLANS)
    return {EMS: ObservedLicense(EMS, "EMS", plans, source="assignedPlans+provisionedPlans")}


def rows(updated: datetime = LONG_AGO) -> dict[str, StatusRecord]:
    return {
        "EMS": StatusRecord("u1", "EMS", "u1@contoso.example", "pending", "checking", "r", "hr", updated_at=updated)
    }


def kinds(observed: dict[str, ObservedLicense], updated: datetime = LONG_AGO) -> list[str]:
    found = assess_provisioning(rows(updated), observed, RESOLVED, now=NOW, deadline=DEADLINE)
    return [d.kind for d in found]


def test_settling_past_the_deadline_is_stuck_and_within_it_is_not() -> None:
    """PendingInput is the only status that counts toward provisioning-stuck, and only past the deadline."""
    assert kinds(ems(INTUNE_A="PendingInput")) == ["provisioning-stuck"]
    assert kinds(ems(INTUNE_A="PendingInput"), updated=NOW - timedelta(hours=1)) == []


def test_admin_statuses_are_needs_admin_with_the_fix_never_stuck() -> None:
    """PendingActivation / PendingProvisioning: needs-admin naming what to do, however long they have waited."""
    [drift] = assess_provisioning(
        rows(),
        ems(INTUNE_A="PendingActivation", MFA_PREMIUM="PendingProvisioning"),
        RESOLVED,
        now=NOW,
        deadline=DEADLINE,
    )
    assert (drift.kind, drift.sku, drift.fix) == ("needs-admin", "EMS", None)
    assert "INTUNE_A is PendingActivation: an admin must activate the service" in drift.detail
    assert "MFA_PREMIUM is PendingProvisioning: a plan Microsoft added to the SKU" in drift.detail
    assert kinds(ems(INTUNE_A="PendingActivation"), updated=NOW - timedelta(minutes=5)) == ["needs-admin"]


def test_an_error_outranks_everything_else() -> None:
    """A plan in Error: provisioning-error, even with other plans pending."""
    assert kinds(ems(INTUNE_A="Error", MFA_PREMIUM="PendingActivation")) == ["provisioning-error"]
    assert kinds(ems()) == []
