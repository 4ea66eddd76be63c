"""Pure verification: expected disabled set + observed plan states -> outcome."""

from licensing.core.model import ObservedLicense, PlanState
from licensing.core.verification import ExpectedLicense, verify_license
from tests.unit.catalog import EMS, INTUNE_A, RMS_S_PREMIUM

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


def test_pending_plans_keep_the_license_pending() -> None:
    """Each Pending* status means 'check again later'."""
    for status in ("PendingProvisioning", "PendingInput", "PendingActivation"):
        verdict = verify_license(EXPECTED, observed("Disabled", status))
        assert verdict.outcome == "pending", status
        assert f"RMS_S_PREMIUM is {status}" in verdict.reason


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
    """Right after the disabled set changes, Graph may briefly show the plan as pending."""
    assert verify_license(EXPECTED, observed("PendingProvisioning", "Success")).outcome == "pending"


def test_plan_added_to_the_sku_later_must_be_provisioned() -> None:
    """A plan the policy never mentions (Microsoft added it) is expected enabled, i.e. Success."""
    new_plan = PlanState("0feaeb32-d00e-4d66-bd5a-43b5b83db82c", "NEW_PLAN", "Disabled")
    seen = ObservedLicense(EMS, "EMS", (*observed("Disabled", "Success").plans, new_plan))
    verdict = verify_license(EXPECTED, seen)
    assert verdict.outcome == "failed"
    assert "NEW_PLAN is Disabled (expected Success)" in verdict.reason
