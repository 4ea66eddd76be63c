"""Pure drift assessment: each kind the sweep reports, and which fix it asks for."""

from licensing.core.drift import DRIFT_KINDS, DeviceTally, Drift, ResolvedPolicy, assess, device_limit, fix_for
from licensing.core.model import HeldLicense, UserFacts
from licensing.core.policy import parse_policy
from tests.unit.catalog import EMS, EMSPREMIUM, INTUNE_A, INTUNE_A_D, INTUNE_EDU, RMS_S_PREMIUM, catalog

POLICY = parse_policy(
    {
        "defaultUsageLocation": "US",
        "rules": [
            {"name": "exec", "match": {"department": "Executive"}, "licenses": [{"sku": "EMSPREMIUM"}]},
            {"name": "edu", "match": {"department": "Teachers"}, "licenses": [{"sku": "INTUNE_EDU"}]},
            {"name": "all", "match": "all", "licenses": [{"sku": "EMS", "disabledPlans": ["INTUNE_A"]}]},
        ],
        "companions": [{"sku": "INTUNE_EDU", "requires": ["INTUNE_A_D"]}],
    }
)
RESOLVED = ResolvedPolicy.build(POLICY, catalog())
OK_EMS = HeldLicense(EMS, frozenset({INTUNE_A}))


def user(*held: HeldLicense, location: str | None = "US", enabled: bool = True, **attributes: str) -> UserFacts:
    return UserFacts("u1", "u1@contoso.example", location, enabled, attributes, held)


def kinds(drifts: tuple[Drift, ...]) -> list[str]:
    return [d.kind for d in drifts]


def test_compliant_user_has_no_drift() -> None:
    """EMS with exactly INTUNE_A disabled: nothing to report."""
    assert assess(user(OK_EMS), RESOLVED) == ()


def test_missing_license_and_missing_usage_location() -> None:
    """No license: missing-license, or usage-location-missing when the user has no location either."""
    assert kinds(assess(user(), RESOLVED)) == ["missing-license"]
    assert kinds(assess(user(location=None), RESOLVED)) == ["usage-location-missing"]
    assert fix_for(assess(user(location=None), RESOLVED)) == "assign"


def test_wrong_disabled_plans_names_what_to_change() -> None:
    """A plan enabled that the policy disables, and one disabled that it does not."""
    [drift] = assess(user(HeldLicense(EMS, frozenset({RMS_S_PREMIUM}))), RESOLVED)
    assert drift.kind == "wrong-disabled-plans"
    assert drift.detail == "should be disabled: INTUNE_A; should be enabled: RMS_S_PREMIUM"


def test_disabled_account_holding_a_seat_is_reclaimed() -> None:
    """A disabled account with a managed license: reclaim, fixed by a removal."""
    drifts = assess(user(OK_EMS, enabled=False), RESOLVED)
    assert kinds(drifts) == ["reclaim"]
    assert fix_for(drifts) == "remove"


def test_group_assigned_license_is_reported_never_fixed() -> None:
    """Group-based licensing owns it; the sweep only reports."""
    drifts = assess(user(HeldLicense(EMS, frozenset(), assigned_by_group="g1")), RESOLVED)
    assert kinds(drifts) == ["group-assigned"]
    assert fix_for(drifts) is None


def test_companion_missing_is_its_own_kind() -> None:
    """A teacher with Intune for Education but without Intune A Direct."""
    drifts = assess(user(HeldLicense(INTUNE_EDU, frozenset()), department="Teachers"), RESOLVED)
    assert kinds(drifts) == ["companion-missing"]
    assert drifts[0].sku == "INTUNE_A_D"


def test_extra_managed_license_the_rule_does_not_give() -> None:
    """EMSPREMIUM on an 'all' user: extra-license (a mover the webhook missed)."""
    drifts = assess(user(OK_EMS, HeldLicense(EMSPREMIUM, frozenset())), RESOLVED)
    assert kinds(drifts) == ["extra-license"]
    assert drifts[0].sku == "EMSPREMIUM"


def test_unmanaged_sku_is_not_drift() -> None:
    """A SKU the policy never names is somebody else's business."""
    other = HeldLicense("0c266dff-15dd-4b49-8397-2bb16070ed52", frozenset())
    assert assess(user(OK_EMS, other), RESOLVED) == ()


def test_rule_naming_an_unknown_sku_is_a_policy_error_drift() -> None:
    """A broken rule is reported for its users instead of crashing the sweep."""
    bad = parse_policy({"rules": [{"name": "r", "match": "all", "licenses": [{"sku": "SPE_E5"}]}]})
    [drift] = assess(user(), ResolvedPolicy.build(bad, catalog()))
    assert drift.kind == "policy-error"
    assert "SPE_E5" in drift.detail


def test_companion_satisfied_teacher_is_compliant() -> None:
    """Both Intune SKUs held directly: no drift."""
    held = (HeldLicense(INTUNE_EDU, frozenset()), HeldLicense(INTUNE_A_D, frozenset()))
    assert assess(user(*held, department="Teachers"), RESOLVED) == ()


def test_device_limit_is_fifteen_per_license_with_intune_enabled() -> None:
    """Two SKUs with INTUNE_A enabled cover 30 devices; the 31st is report-only device-limit drift."""
    held = user(HeldLicense(EMS, frozenset()), HeldLicense(EMSPREMIUM, frozenset()))
    assert device_limit(held, 30, RESOLVED) is None
    drift = device_limit(held, 31, RESOLVED)
    assert drift is not None
    assert (drift.kind, drift.fix) == ("device-limit", None)
    assert drift.detail.startswith("31 managed devices, 2 Intune license(s) (EMS, EMSPREMIUM) cover 30")
    assert "device-limit" in DRIFT_KINDS


def test_a_license_with_intune_disabled_covers_no_device() -> None:
    """EMS with INTUNE_A disabled gives no Intune: one device is over the limit; INTUNE_EDU's own plan counts."""
    drift = device_limit(user(OK_EMS), 1, RESOLVED)
    assert drift is not None
    assert "no Intune license cover 0" in drift.detail
    assert device_limit(user(OK_EMS), 0, RESOLVED) is None
    edu_only_plan = HeldLicense(INTUNE_EDU, frozenset({INTUNE_A}))  # INTUNE_EDU plan still enabled
    assert device_limit(user(edu_only_plan), 15, RESOLVED) is None


def test_device_tally_counts_per_user_compactly() -> None:
    """Counts per user id (case-insensitive), through growth; unknown users count 0; ~10 bytes a slot."""
    tally = DeviceTally()
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(5000)]
    for i, user_id in enumerate(ids):
        for _ in range(i % 3 + 1):
            tally.add(user_id)
    assert (tally.users, tally.devices) == (5000, sum(i % 3 + 1 for i in range(5000)))
    assert [tally.count(ids[i]) for i in (0, 1, 2, 4999)] == [1, 2, 3, 2]
    assert tally.count(ids[7].upper()) == 2
    assert tally.count("not-a-user") == 0
    assert tally._keys.itemsize + tally._counts.itemsize == 10
    assert len(tally._keys) <= 4 * tally.users
