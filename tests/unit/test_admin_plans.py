"""Pure decisions behind the admin CLI: kept disabled plans, exact Graph bodies, removals, users files, policy check."""

from dataclasses import replace

import pytest

from licensing.cli.users_file import CommandLineError, UserRow, combine, parse_users_file
from licensing.core.admin_plans import assignment_requests, keep_disabled, plan_removal, seats_needed
from licensing.core.model import HeldLicense, ServicePlan, UserFacts
from licensing.core.planning import plan_changes, resolve
from licensing.core.policy import LicenseSpec, parse_policy
from licensing.core.policy_check import check_against, what_if
from tests.unit.catalog import EMS, INTUNE_A, RMS_S_PREMIUM, catalog


def user(*licenses: HeldLicense, location: str | None = "US", enabled: bool = True, **attributes: str) -> UserFacts:
    return UserFacts("u1", "ada@contoso.example", location, enabled, attributes, licenses)


EMS_NO_INTUNE = resolve(LicenseSpec(sku="EMS", disabled_plans=("INTUNE_A",)), catalog(), rule="cli")


def test_keep_disabled_unions_with_the_current_direct_set() -> None:
    """RMS_S_PREMIUM, disabled today, stays disabled next to the requested INTUNE_A."""
    kept = keep_disabled(EMS_NO_INTUNE, user(HeldLicense(EMS, frozenset({RMS_S_PREMIUM.upper()}))), catalog())
    assert kept.disabled_plan_ids == {INTUNE_A, RMS_S_PREMIUM}
    assert kept.disabled_plan_names == ("INTUNE_A", "RMS_S_PREMIUM")


def test_keep_disabled_ignores_a_group_copy_and_users_without_the_sku() -> None:
    """Only the direct assignment's set counts: a group's disabled plans are the group's business."""
    grouped = user(HeldLicense(EMS, frozenset({RMS_S_PREMIUM}), assigned_by_group="g1"))
    assert keep_disabled(EMS_NO_INTUNE, grouped, catalog()) == EMS_NO_INTUNE
    assert keep_disabled(EMS_NO_INTUNE, user(), catalog()) == EMS_NO_INTUNE


def test_assignment_requests_are_the_exact_graph_bodies() -> None:
    """usageLocation PATCH first, then one assignLicense with sorted disabledPlans."""
    newbie = user(location=None)
    plan = plan_changes(newbie, (EMS_NO_INTUNE,), catalog(), rule="cli", usage_location="DE")
    assert [r.as_dict() for r in assignment_requests(newbie, plan)] == [
        {"method": "PATCH", "url": "/users/u1", "body": {"usageLocation": "DE"}},
        {"method": "POST", "url": "/users/u1/assignLicense",
         "body": {"addLicenses": [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], "removeLicenses": []}},
    ]  # fmt: skip


def test_removal_never_touches_a_group_license() -> None:
    """Direct -> remove (and mention the group copy that stays); group only -> nothing; none -> nothing."""
    ems = catalog().by_id(EMS)
    assert ems is not None
    both = plan_removal(user(HeldLicense(EMS, frozenset()), HeldLicense(EMS, frozenset(), "g1")), ems)
    assert both.action == "remove"
    assert both.request is not None
    assert both.request.body == {"addLicenses": [], "removeLicenses": [EMS]}
    assert "group(s) g1 stays" in both.note
    only_group = plan_removal(user(HeldLicense(EMS, frozenset(), "g1")), ems)
    assert (only_group.action, only_group.request) == ("group-only", None)
    assert "remove the user from the group instead" in only_group.note
    assert plan_removal(user(), ems).action == "absent"


def test_seats_needed_counts_new_seats_only() -> None:
    """Two new EMS holders and one re-configured with one free seat: one warning for EMS."""
    tight = catalog(ems_free=1)
    plans = {
        uid: plan_changes(u, (EMS_NO_INTUNE,), tight, rule="cli", usage_location=None)
        for uid, u in {"a": user(), "b": replace(user(), id="b"), "c": user(HeldLicense(EMS, frozenset()))}.items()
    }
    assert seats_needed(plans, tight) == ["2 users need a new EMS seat but only 1 are free"]
    assert seats_needed(plans, catalog(ems_free=5)) == []


def test_users_file_accepts_a_header_or_a_plain_list() -> None:
    """A header names the columns (any order, any case); without one, each line is a user."""
    assert parse_users_file("UsageLocation,UPN\nfr,a@x.example\n\n# skip\n,b@x.example\n", source="f") == [
        UserRow("a@x.example", "FR"), UserRow("b@x.example"),
    ]  # fmt: skip
    assert parse_users_file("a@x.example\n0b9e6f5c-1111-4aaa-8bbb-123456789abc\n", source="f") == [
        UserRow("a@x.example"), UserRow("0b9e6f5c-1111-4aaa-8bbb-123456789abc"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "f lists no users"),
        ("name,dept\nAda,Sales\n", "no user column in the header"),
        ("upn,usageLocation\n,US\nb@x.example,USA\n", "line 2: no user; line 3: usageLocation 'USA'"),
    ],
    ids=["empty", "no-user-column", "bad-lines"],
)
def test_users_file_problems_name_the_line_and_the_fix(text: str, message: str) -> None:
    """Every problem is named with its line number, in one error."""
    with pytest.raises(CommandLineError, match=message):
        parse_users_file(text, source="f")


def test_users_file_from_a_european_excel_uses_its_semicolons() -> None:
    """Excel in de-DE / fr-FR writes ';' between columns: read as columns, not as one odd user name."""
    assert parse_users_file("userPrincipalName;usageLocation\na@x.example;de\n", source="f") == [
        UserRow("a@x.example", "DE")
    ]
    assert parse_users_file("upn\tusageLocation\nb@x.example\tFR\n", source="f") == [UserRow("b@x.example", "FR")]


def test_combine_keeps_each_user_once_in_first_seen_order() -> None:
    """A user named twice (any case) is acted on once; no users at all is a usage error."""
    assert combine(["A@x.example"], [UserRow("a@X.example", "FR"), UserRow("b@x.example")]) == [
        UserRow("A@x.example"), UserRow("b@x.example"),
    ]  # fmt: skip
    with pytest.raises(CommandLineError, match="no users given"):
        combine([], [])


POLICY = {
    "rules": [
        {"name": "exec", "match": {"department": "Executive"}, "licenses": [{"sku": "EMSPREMIUM"}]},
        {"name": "all", "match": "all", "licenses": [{"sku": "EMS", "disabledPlans": ["INTUNE_A"]}]},
    ],
    "reviewedPlans": {"EMS": ["AAD_PREMIUM", "RMS_S_PREMIUM", "ADALLOM_S_DISCOVERY", "EXCHANGE_S_FOUNDATION",
                              "RMS_S_ENTERPRISE", "MFA_PREMIUM"],
                      "EMSPREMIUM": ["aad_premium", "RMS_S_PREMIUM", "INTUNE_A", "GONE_PLAN"]},
}  # fmt: skip


def test_check_finds_unreviewed_plans_and_stale_review_entries() -> None:
    """A plan added to EMS is unreviewed (for rule all); a reviewed plan EMSPREMIUM lost is a warning."""
    base = catalog()
    grown = replace(base, skus=tuple(
        replace(s, plans=(*s.plans, ServicePlan("00000000-0000-4000-8000-000000000001", "NEW_PLAN")))
        if s.id == EMS else s for s in base.skus
    ))  # fmt: skip
    report = check_against(parse_policy(POLICY), grown)
    assert report.errors == ()
    assert [(u.sku, u.plans, u.rules) for u in report.unreviewed] == [("EMS", ("NEW_PLAN",), ("all",))]
    assert report.warnings == ("reviewedPlans.EMSPREMIUM names GONE_PLAN, which EMSPREMIUM no longer contains",)
    assert check_against(parse_policy(POLICY), base).unreviewed == ()


def test_check_reports_every_unresolvable_name() -> None:
    """Two bad names in two places are two errors, each saying what the tenant has."""
    bad = {**POLICY, "rules": [
        {"name": "exec", "match": "all", "licenses": [{"sku": "SPE_E5"}]},
        {"name": "all", "match": "all", "licenses": [{"sku": "EMS", "disabledPlans": ["INTUNE_B"]}]},
    ], "companions": [{"sku": "INTUNE_EDU", "requires": ["NOPE"]}]}  # fmt: skip
    errors = check_against(parse_policy(bad), catalog()).errors
    assert len(errors) == 3
    assert "the tenant has: EMS, EMSPREMIUM" in errors[0]
    assert "EMS has: AAD_PREMIUM" in errors[1]
    assert "'companions.INTUNE_EDU' names SKU 'NOPE'" in errors[2]


def test_what_if_says_what_onboarding_would_do() -> None:
    """Assign, already compliant, blocked for seats, disabled account: each with its reason."""
    policy = parse_policy(POLICY)
    assert what_if(user(), policy, catalog()).detail == "assign EMS (disabled: INTUNE_A)"
    compliant = user(HeldLicense(EMS, frozenset({INTUNE_A})))
    assert (what_if(compliant, policy, catalog()).action, what_if(compliant, policy, catalog()).rule) == ("none", "all")
    boss = what_if(user(department="Executive"), policy, catalog(premium_free=0))
    assert (boss.rule, boss.action) == ("exec", "blocked")
    assert what_if(user(enabled=False), policy, catalog()).action == "skip"
    nowhere = what_if(user(location=None), policy, catalog())
    assert (nowhere.action, "no usage location" in nowhere.detail) == ("reject", True)
