"""Pure planning: policy + user + catalog -> what to assign."""

from dataclasses import replace

import pytest

from licensing.core.errors import PolicyError, SeatsExhausted, UsageLocationMissing
from licensing.core.model import Catalog, HeldLicense, UserFacts
from licensing.core.planning import plan_assignment, plan_removals
from licensing.core.policy import Policy, parse_policy
from tests.unit.catalog import EMS, EMSPREMIUM, INTUNE_A, INTUNE_A_D, INTUNE_EDU, RMS_S_PREMIUM, catalog


def policy(**extra: object) -> Policy:
    return parse_policy(
        {
            "rules": [
                {"name": "exec", "match": {"department": "Executive"}, "licenses": [{"sku": "EMSPREMIUM"}]},
                {"name": "edu", "match": {"department": "Teachers"}, "licenses": [{"sku": "INTUNE_EDU"}]},
                {"name": "all", "match": "all", "licenses": [{"sku": "EMS", "disabledPlans": ["INTUNE_A"]}]},
            ],
            "companions": [{"sku": "INTUNE_EDU", "requires": ["INTUNE_A_D"]}],
            **extra,
        }
    )


def user(*licenses: HeldLicense, location: str | None = "US", **attributes: str) -> UserFacts:
    return UserFacts("u1", "ada@contoso.example", location, True, attributes, licenses)


def test_new_user_gets_ems_with_intune_disabled() -> None:
    """The classic case: EMS assigned with exactly INTUNE_A disabled."""
    plan = plan_assignment(user(), policy(), catalog())
    assert plan.rule == "all"
    [change] = plan.changes
    assert change.before is None
    assert change.desired.sku_id == EMS
    assert change.desired.disabled_plan_ids == {INTUNE_A}
    assert change.desired.disabled_plan_names == ("INTUNE_A",)
    assert plan.usage_location is None


def test_user_already_matching_is_a_no_op() -> None:
    """Same SKU with the same disabled set: nothing to send."""
    plan = plan_assignment(user(HeldLicense(EMS, frozenset({INTUNE_A.upper()}))), policy(), catalog())
    assert plan.no_op
    assert plan.changes == ()


def test_different_disabled_set_is_replaced_with_the_full_desired_set() -> None:
    """Graph replaces disabledPlans, so the change carries the whole desired set, not a delta."""
    held = HeldLicense(EMS, frozenset({RMS_S_PREMIUM}))
    [change] = plan_assignment(user(held), policy(), catalog()).changes
    assert change.before == frozenset({RMS_S_PREMIUM})
    assert change.desired.disabled_plan_ids == {INTUNE_A}


def test_existing_sku_needs_no_free_seat() -> None:
    """Re-assigning a SKU the user holds does not consume a seat, so zero free seats is fine."""
    held = HeldLicense(EMS, frozenset())
    [change] = plan_assignment(user(held), policy(), catalog(ems_free=0)).changes
    assert change.before == frozenset()


def test_no_free_seats_for_a_new_sku_blocks() -> None:
    """A new SKU with no free seat raises SeatsExhausted naming it."""
    with pytest.raises(SeatsExhausted) as caught:
        plan_assignment(user(department="Executive"), policy(), catalog(premium_free=0))
    assert caught.value.part_numbers == ("EMSPREMIUM",)


def test_companion_sku_is_added_to_the_same_assignment() -> None:
    """Intune for Education brings Intune A Direct along."""
    plan = plan_assignment(user(department="Teachers"), policy(), catalog())
    assert [c.desired.sku_id for c in plan.changes] == [INTUNE_EDU, INTUNE_A_D]


def test_companion_without_seats_blocks_both() -> None:
    """Both or neither: no seat for the companion means nothing is assigned."""
    with pytest.raises(SeatsExhausted) as caught:
        plan_assignment(user(department="Teachers"), policy(), catalog(device_free=0))
    assert caught.value.part_numbers == ("INTUNE_A_D",)
    assert "together or not at all" in caught.value.message


def test_usage_location_comes_from_request_then_rule_then_policy_default() -> None:
    """A user without usageLocation gets the first one known."""
    nowhere = user(location=None)
    assert plan_assignment(nowhere, policy(defaultUsageLocation="GB"), catalog()).usage_location == "GB"
    plan = plan_assignment(nowhere, policy(defaultUsageLocation="GB"), catalog(), usage_location="DE")
    assert plan.usage_location == "DE"


def test_no_usage_location_anywhere_is_a_clear_error() -> None:
    """Graph would refuse; we say which three places could provide one."""
    with pytest.raises(UsageLocationMissing, match="defaultUsageLocation"):
        plan_assignment(user(location=None), policy(), catalog())


def test_existing_usage_location_is_left_alone() -> None:
    """Only a missing usage location is set."""
    assert plan_assignment(user(location="FR"), policy(defaultUsageLocation="US"), catalog()).usage_location is None


def test_request_attributes_override_directory_attributes() -> None:
    """HR data in the request is fresher than Entra's copy."""
    plan = plan_assignment(
        user(department="Sales"), policy(), catalog(premium_free=1), attributes={"department": "Executive"}
    )
    assert plan.rule == "exec"
    assert plan.changes[0].desired.sku_id == EMSPREMIUM


def test_group_assigned_license_is_not_fought() -> None:
    """A SKU held through a group is left to the group: no direct assignment is planned."""
    plan = plan_assignment(user(HeldLicense(EMS, frozenset(), assigned_by_group="g1")), policy(), catalog())
    assert plan.changes == ()
    assert [d.part_number for d in plan.held_by_group] == ["EMS"]
    assert plan.managed == ()


def test_unknown_sku_lists_what_the_tenant_has() -> None:
    """A policy naming a SKU the tenant lacks is an error listing the tenant's SKUs."""
    bad = parse_policy({"rules": [{"name": "r", "match": "all", "licenses": [{"sku": "SPE_E5"}]}]})
    with pytest.raises(PolicyError, match=r"'SPE_E5'.*the tenant has: EMS, EMSPREMIUM, INTUNE_A_D, INTUNE_EDU"):
        plan_assignment(user(), bad, catalog())


def test_unknown_plan_lists_the_skus_plans() -> None:
    """A disabled plan the SKU lacks is an error listing that SKU's plans."""
    bad = parse_policy(
        {"rules": [{"name": "r", "match": "all", "licenses": [{"sku": "EMS", "disabledPlans": ["INTUNE_B"]}]}]}
    )
    with pytest.raises(PolicyError, match=r"'INTUNE_B'.*EMS has: AAD_PREMIUM, ADALLOM_S_DISCOVERY"):
        plan_assignment(user(), bad, catalog())


def test_no_matching_rule_is_a_policy_error_showing_the_attributes() -> None:
    """Without an "all" rule, an unmatched user is rejected with the attributes we saw."""
    narrow = parse_policy({"rules": [{"name": "r", "match": {"department": "X"}, "licenses": [{"sku": "EMS"}]}]})
    with pytest.raises(PolicyError, match="department='Sales'"):
        plan_assignment(user(department="Sales"), narrow, catalog())


def test_leaver_loses_only_what_the_app_assigned() -> None:
    """Removals cover owned direct licenses; a group license and a hand-assigned SKU stay."""
    held = (
        HeldLicense(EMS, frozenset({INTUNE_A})),
        HeldLicense(EMSPREMIUM, frozenset()),  # assigned by an admin, not by the app
        HeldLicense(INTUNE_EDU, frozenset(), assigned_by_group="g1"),
    )
    removals = plan_removals(user(*held), frozenset({EMS, INTUNE_EDU}), catalog())
    assert [(r.part_number, r.disabled_before) for r in removals] == [("EMS", frozenset({INTUNE_A}))]


def test_mover_removes_an_owned_sku_the_new_rule_does_not_give() -> None:
    """Sales -> Teachers: EMS (owned) goes in the same plan that adds Intune for Education."""
    plan = plan_assignment(
        user(HeldLicense(EMS, frozenset({INTUNE_A})), department="Teachers"),
        policy(),
        catalog(),
        owned=frozenset({EMS}),
    )
    assert [r.part_number for r in plan.removals] == ["EMS"]
    assert [c.desired.part_number for c in plan.changes] == ["INTUNE_EDU", "INTUNE_A_D"]


def test_mover_keeps_a_sku_it_did_not_assign() -> None:
    """A hand-assigned EMS is not the app's to take away."""
    plan = plan_assignment(user(HeldLicense(EMS, frozenset()), department="Teachers"), policy(), catalog())
    assert plan.removals == ()


@pytest.mark.parametrize("state", ["Error", "ActiveWithError"])
def test_group_assignment_in_error_is_not_held_via_the_group(state: str) -> None:
    """A group license in error licenses nobody: not "held via a group", left to an admin, not assigned or verified."""
    failed = HeldLicense(EMS, frozenset(), assigned_by_group="g1", state=state, error="CountViolation")
    plan = plan_assignment(user(failed), policy(), catalog())
    assert plan.held_by_group == ()
    assert [(f.desired.part_number, f.held.error) for f in plan.group_failed] == [("EMS", "CountViolation")]
    assert plan.changes == ()
    assert plan.managed == ()


def test_rule_can_assign_directly_when_its_group_fails() -> None:
    """assignDirectlyWhenGroupFails: the SKU is assigned directly, and the group failure is still reported."""
    failed = HeldLicense(EMS, frozenset(), assigned_by_group="g1", state="Error", error="Other")
    direct = policy()
    rules = [r.model_copy(update={"assign_directly_when_group_fails": True}) for r in direct.rules]
    plan = plan_assignment(user(failed), direct.model_copy(update={"rules": tuple(rules)}), catalog())
    [change] = plan.changes
    assert (change.desired.part_number, change.before) == ("EMS", None)
    assert plan.group_failed == ()
    assert [f.desired.part_number for f in plan.group_bypassed] == ["EMS"]
    assert [d.part_number for d in plan.managed] == ["EMS"]


def test_working_group_next_to_a_failed_one_still_holds_the_sku() -> None:
    """One group in error, another working: the working group holds it; nothing to report."""
    failed = HeldLicense(EMS, frozenset(), assigned_by_group="g1", state="Error", error="CountViolation")
    plan = plan_assignment(user(failed, HeldLicense(EMS, frozenset(), assigned_by_group="g2")), policy(), catalog())
    assert [d.part_number for d in plan.held_by_group] == ["EMS"]
    assert plan.group_failed == ()


def test_grace_period_seats_are_free_seats() -> None:
    """prepaidUnits.warning seats can still be assigned: a SKU with none enabled left but some in grace is not full."""
    full = catalog(ems_free=0)
    graced = Catalog(tuple(replace(s, warning=3) if s.id == EMS else s for s in full.skus))
    assert graced.by_id(EMS).free == 3  # type: ignore[union-attr]
    [change] = plan_assignment(user(), policy(), graced).changes
    assert change.desired.part_number == "EMS"
    with pytest.raises(SeatsExhausted):
        plan_assignment(user(), policy(), full)
