"""Pure verification: expected disabled set + observed plan states -> outcome."""

from dataclasses import replace

import pytest

from licensing.core.model import HeldLicense, ObservedLicense, PlanState
from licensing.core.verification import ExpectedLicense, group_failure_verdict, verify_license
from tests.unit.catalog import AAD_PREMIUM, EMS, INTUNE_A, RMS_S_PREMIUM

EXPECTED = ExpectedLicense(EMS, "EMS", frozenset({INTUNE_A}))


def observed(intune: str, rms: str) -> ObservedLicense:
    return ObservedLicense(
        EMS, "EMS", (PlanState(INTUNE_A, "INTUNE_A", intune), PlanState(RMS_S_PREMIUM, "RMS_S_PREMIUM", rms))
    )


def test_disabled_plan_disabled_and_others_success_is_verified() -> None:
    """The ServiceStatus we want: INTUNE_A Disabled, everything else Success."""
    verdict = verify_license(EXPECTED, observed("Disabled", "Success"))
    assert verdict.outcome == "verified"
    assert verdict.plan_statuses() == {"INTUNE_A": "Disabled", "RMS_S_PREMIUM": "Success"}


def test_settling_plan_keeps_the_license_pending() -> None:
    """PendingInput (waiting for the service) means 'check again later'."""
    verdict = verify_license(EXPECTED, observed("Disabled", "PendingInput"))
    assert verdict.outcome == "pending"
    assert "RMS_S_PREMIUM is PendingInput" in verdict.reason


ACTIVATE = "an admin must activate the service in the Microsoft 365 admin center, then run `licensing verify ada@"
ADDED = "a plan Microsoft added to the SKU is not activated in this tenant: activate it"


@pytest.mark.parametrize(("status", "fix"), [("PendingActivation", ACTIVATE), ("PendingProvisioning", ADDED)])
def test_admin_pending_plans_need_action_not_another_check(status: str, fix: str) -> None:
    """PendingActivation / PendingProvisioning wait for an admin: action-required at once, the fix in the reason."""
    verdict = verify_license(EXPECTED, observed("Disabled", status), user="ada@contoso.example")
    assert verdict.outcome == "action-required"
    assert f"RMS_S_PREMIUM is {status}: {fix}" in verdict.reason


def test_action_required_outranks_pending_and_failure_outranks_both() -> None:
    """One admin-pending plan makes the SKU action-required even while another settles; Error still fails it."""
    settling = PlanState(AAD_PREMIUM, "AAD_PREMIUM", "PendingInput")
    seen = ObservedLicense(EMS, "EMS", (*observed("Disabled", "PendingActivation").plans, settling))
    assert verify_license(EXPECTED, seen).outcome == "action-required"
    assert verify_license(EXPECTED, observed("Error", "PendingActivation")).outcome == "failed"


def test_reason_and_verdict_say_where_the_plan_states_were_read() -> None:
    """The plan-state source (licenseDetails or assignedPlans+provisionedPlans) is kept and named in the reason."""
    seen = replace(observed("Disabled", "Success"), source="assignedPlans+provisionedPlans")
    verdict = verify_license(EXPECTED, seen)
    assert verdict.source == "assignedPlans+provisionedPlans"
    assert verdict.reason == "all 2 plans as expected (plan states from assignedPlans+provisionedPlans)"


def test_group_license_in_error_is_action_required_with_its_error_code() -> None:
    """A SKU only an errored group would give: action-required, naming the group, the state and the error code."""
    held = HeldLicense(EMS, frozenset(), assigned_by_group="g-1", state="Error", error="CountViolation")
    verdict = group_failure_verdict(EXPECTED, held)
    assert verdict.outcome == "action-required"
    assert verdict.reason.startswith("EMS via group g-1 is in error (CountViolation, state Error)")


def test_error_status_fails() -> None:
    """A plan in Error fails the license with the plan named."""
    verdict = verify_license(EXPECTED, observed("Disabled", "Error"))
    assert verdict.outcome == "failed"
    assert "RMS_S_PREMIUM is Error (expected Success)" in verdict.reason


def test_plan_that_should_be_disabled_but_is_enabled_fails() -> None:
    """INTUNE_A provisioning Success means the disabled set did not stick."""
    verdict = verify_license(EXPECTED, observed("Success", "Success"))
    assert verdict.outcome == "failed"
    assert "INTUNE_A is Success (expected Disabled)" in verdict.reason


def test_failure_outranks_pending() -> None:
    """One failed plan fails the license even while another is pending."""
    assert verify_license(EXPECTED, observed("Error", "PendingProvisioning")).outcome == "failed"


def test_missing_license_fails() -> None:
    """The SKU vanished from the user (removed by someone else)."""
    verdict = verify_license(EXPECTED, None)
    assert verdict.outcome == "failed"
    assert "not assigned" in verdict.reason


def test_disabled_plan_still_pending_is_pending_not_failed() -> None:
    """Right after the disabled set changes, Graph may briefly show the plan as settling."""
    assert verify_license(EXPECTED, observed("PendingInput", "Success")).outcome == "pending"


def test_plan_added_to_the_sku_later_must_be_provisioned() -> None:
    """A plan the policy never mentions (Microsoft added it) is expected enabled, i.e. Success."""
    new_plan = PlanState("0feaeb32-d00e-4d66-bd5a-43b5b83db82c", "NEW_PLAN", "Disabled")
    seen = ObservedLicense(EMS, "EMS", (*observed("Disabled", "Success").plans, new_plan))
    verdict = verify_license(EXPECTED, seen)
    assert verdict.outcome == "failed"
    assert "NEW_PLAN is Disabled (expected Success)" in verdict.reason
