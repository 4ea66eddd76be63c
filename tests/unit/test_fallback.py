"""App-only plan states: assignedPlans joined with provisionedPlans on the service (adapters.graph.fallback)."""

from typing import Any

from licensing.adapters.graph.fallback import observed_from_user_json
from licensing.core.verification import ExpectedLicense, verify_license
from tests.unit.catalog import AAD_PREMIUM, EMS, EMS_PLANS, INTUNE_A, RMS_S_PREMIUM, catalog

SERVICES = {  # the workload Graph names for each EMS plan
    "AAD_PREMIUM": "AADPremiumService",
    "RMS_S_PREMIUM": "RMSOnline",
    "ADALLOM_S_DISCOVERY": "Adallom",
    "EXCHANGE_S_FOUNDATION": "exchange",
    "RMS_S_ENTERPRISE": "RMSOnline",
    "MFA_PREMIUM": "MultiFactorService",
    "INTUNE_A": "SCO",
}


def user_json(provisioned: dict[str, str], *, capability: dict[str, str] | None = None) -> dict[str, Any]:
    """A user holding EMS with INTUNE_A disabled; ``provisioned`` is service -> provisioningStatus."""
    capability = capability or {}
    return {
        "id": "u1",
        "assignedLicenses": [{"skuId": EMS, "disabledPlans": [INTUNE_A]}],
        "assignedPlans": [
            {"servicePlanId": p.id, "service": SERVICES[p.name], "capabilityStatus": capability.get(p.name, "Enabled")}
            for p in EMS_PLANS
            if p.id != INTUNE_A
        ],
        "provisionedPlans": [
            {"service": service, "capabilityStatus": "Enabled", "provisioningStatus": status}
            for service, status in provisioned.items()
        ],
        "licenseAssignmentStates": [{"skuId": EMS, "assignedByGroup": None, "state": "Active", "error": "None"}],
    }


def statuses(data: dict[str, Any]) -> dict[str, str]:
    [observed] = observed_from_user_json(data, catalog())
    return {p.name: p.status for p in observed.plans}


ALL_SUCCESS = dict.fromkeys(set(SERVICES.values()) - {"SCO"}, "Success")


def test_enabled_plans_take_their_services_provisioning_status() -> None:
    """Each enabled plan shows its service's provisioningStatus; the disabled plan is Disabled; the source is named."""
    [observed] = observed_from_user_json(user_json({**ALL_SUCCESS, "RMSOnline": "PendingInput"}), catalog())
    found = {p.name: p.status for p in observed.plans}
    assert observed.source == "assignedPlans+provisionedPlans"
    assert (observed.sku_id, observed.part_number) == (EMS, "EMS")
    assert found["INTUNE_A"] == "Disabled"
    assert (found["RMS_S_PREMIUM"], found["RMS_S_ENTERPRISE"]) == ("PendingInput", "PendingInput")
    assert found["AAD_PREMIUM"] == "Success"


def test_enabled_plan_whose_service_has_not_reported_is_settling_never_success() -> None:
    """Enabled in assignedPlans but no provisionedPlans entry for its service: PendingInput, not Success."""
    found = statuses(user_json({k: v for k, v in ALL_SUCCESS.items() if k != "exchange"}))
    assert found["EXCHANGE_S_FOUNDATION"] == "PendingInput"
    assert found["AAD_PREMIUM"] == "Success"


def test_admin_pending_service_statuses_pass_through() -> None:
    """A service waiting for activation shows PendingActivation on each of its plans (for verification to act on)."""
    found = statuses(user_json({**ALL_SUCCESS, "AADPremiumService": "PendingActivation", "Adallom": "Error"}))
    assert found["AAD_PREMIUM"] == "PendingActivation"
    assert found["ADALLOM_S_DISCOVERY"] == "Error"


def test_service_names_join_case_insensitively() -> None:
    """Graph's service names vary in case across the two collections; the join does not care."""
    found = statuses(user_json({k.upper(): v for k, v in ALL_SUCCESS.items()}))
    assert set(found.values()) == {"Success", "Disabled"}


def test_capability_other_than_enabled_decides_alone() -> None:
    """Suspended and LockedOut are Error, Deleted is Disabled, Warning (grace period) still follows provisioning."""
    capability = {"AAD_PREMIUM": "Suspended", "MFA_PREMIUM": "LockedOut", "RMS_S_PREMIUM": "Deleted"}
    found = statuses(user_json(ALL_SUCCESS, capability={**capability, "ADALLOM_S_DISCOVERY": "Warning"}))
    assert (found["AAD_PREMIUM"], found["MFA_PREMIUM"], found["RMS_S_PREMIUM"]) == ("Error", "Error", "Disabled")
    assert found["ADALLOM_S_DISCOVERY"] == "Success"


def test_plan_not_listed_in_assigned_plans_yet_is_settling() -> None:
    """The directory has not listed the plan yet: PendingInput."""
    data = user_json(ALL_SUCCESS)
    data["assignedPlans"] = [p for p in data["assignedPlans"] if p["servicePlanId"] != AAD_PREMIUM]
    assert statuses(data)["AAD_PREMIUM"] == "PendingInput"


def test_direct_assignment_in_error_puts_every_enabled_plan_in_error() -> None:
    """licenseAssignmentStates state Error on the direct assignment: every enabled plan is Error."""
    data = user_json(ALL_SUCCESS)
    data["licenseAssignmentStates"][0].update(state="Error", error="MutuallyExclusiveViolation")
    found = statuses(data)
    assert found["INTUNE_A"] == "Disabled"
    assert {found[name] for name in ("AAD_PREMIUM", "RMS_S_PREMIUM", "EXCHANGE_S_FOUNDATION")} == {"Error"}


def test_an_enabled_entry_wins_over_another_skus_deleted_one() -> None:
    """A plan listed twice (two SKUs carry it) counts as enabled when either entry is."""
    data = user_json(ALL_SUCCESS)
    data["assignedPlans"].insert(
        0, {"servicePlanId": RMS_S_PREMIUM, "service": "RMSOnline", "capabilityStatus": "Deleted"}
    )
    assert statuses(data)["RMS_S_PREMIUM"] == "Success"


def test_empty_or_odd_json_gives_nothing_rather_than_failing() -> None:
    """No assignedLicenses (or junk entries): no licenses observed."""
    assert observed_from_user_json({"id": "u1"}, catalog()) == ()
    assert observed_from_user_json({"assignedLicenses": ["junk", None], "provisionedPlans": [1]}, catalog()) == ()


def _verdict(data: dict[str, Any]) -> str:
    [observed] = observed_from_user_json(data, catalog())
    return verify_license(ExpectedLicense(EMS, "EMS", frozenset({INTUNE_A})), observed).outcome


def test_a_deleted_entry_of_a_removed_plan_does_not_stand_in_for_a_pending_service() -> None:
    """provisionedPlans keeps a Deleted entry for a removed plan of the same service: the live one decides."""
    data = user_json({**ALL_SUCCESS, "RMSOnline": "PendingInput"})
    data["provisionedPlans"].append(
        {"service": "RMSOnline", "capabilityStatus": "Deleted", "provisioningStatus": "Success"}
    )
    assert _verdict(data) == "pending"


def test_several_entries_for_one_service_take_the_worst_not_the_last() -> None:
    """One entry per plan, several per service: an Error is not hidden by a Success listed after it."""
    data = user_json(ALL_SUCCESS)
    data["provisionedPlans"].insert(
        0, {"service": "exchange", "capabilityStatus": "Enabled", "provisioningStatus": "Error"}
    )
    assert _verdict(data) == "failed"
