"""Policy parsing, validation and rule matching."""

import json
from pathlib import Path

import pytest

from licensing.adapters.policy_file import load_policy
from licensing.core.errors import PolicyError
from licensing.core.policy import parse_policy

REPO = Path(__file__).resolve().parents[2]


def test_shipped_policy_file_is_valid() -> None:
    """The example policy at the repo root loads and keeps its rule order."""
    policy = load_policy(REPO / "licensing-policy.json")
    assert [r.name for r in policy.rules] == ["executives", "teachers", "contractors", "everyone"]
    assert policy.default_usage_location == "US"


def test_first_matching_rule_wins_case_insensitively() -> None:
    """Rules are ordered; values match regardless of case; lists mean any of."""
    policy = parse_policy(
        {
            "rules": [
                {"name": "sales", "match": {"department": ["Sales", "Marketing"]}, "licenses": [{"sku": "EMS"}]},
                {"name": "all", "match": "all", "licenses": [{"sku": "EMSPREMIUM"}]},
            ]
        }
    )
    assert policy.rule_for({"department": "marketing"}).name == "sales"  # type: ignore[union-attr]
    assert policy.rule_for({"department": "Finance"}).name == "all"  # type: ignore[union-attr]


def test_every_condition_of_a_rule_must_hold() -> None:
    """A rule with two attributes needs both."""
    policy = parse_policy(
        {
            "rules": [
                {"name": "t", "match": {"department": "Teachers", "companyName": "School"}, "licenses": [{"sku": "X"}]}
            ]
        }
    )
    assert policy.rule_for({"department": "Teachers", "companyName": "School"}) is not None
    assert policy.rule_for({"department": "Teachers"}) is None


def test_unknown_match_attribute_is_named_with_the_allowed_ones() -> None:
    """A typo in an attribute is an error that lists what can be matched."""
    with pytest.raises(PolicyError, match=r"unknown attribute\(s\) departmnet; match on department, jobTitle"):
        parse_policy({"rules": [{"name": "x", "match": {"departmnet": "Sales"}, "licenses": [{"sku": "EMS"}]}]})


def test_invalid_usage_location_and_missing_licenses_are_both_reported() -> None:
    """Validation reports every problem with its location."""
    with pytest.raises(PolicyError) as caught:
        parse_policy({"defaultUsageLocation": "usa", "rules": [{"name": "x", "match": "all", "licenses": []}]})
    assert "defaultUsageLocation" in caught.value.message
    assert "rules.0.licenses" in caught.value.message


def test_toml_policy_is_accepted(tmp_path: Path) -> None:
    """A .toml policy file is read as TOML."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[[rules]]\nname = "all"\nmatch = "all"\nlicenses = [{ sku = "EMS", disabledPlans = ["INTUNE_A"] }]\n'
    )
    assert load_policy(path).rules[0].licenses[0].disabled_plans == ("INTUNE_A",)


def test_unreadable_policy_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    """A missing file names LICENSING_POLICY_PATH."""
    with pytest.raises(PolicyError, match="LICENSING_POLICY_PATH"):
        load_policy(tmp_path / "missing.json")


def test_malformed_json_policy_is_a_policy_error(tmp_path: Path) -> None:
    """Broken JSON is reported as such, with the file name."""
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(PolicyError, match=r"p.json is not valid JSON"):
        load_policy(path)


def test_companions_accept_plain_part_numbers() -> None:
    """`requires` may list part numbers or full license specs."""
    data = {
        "rules": [{"name": "a", "match": "all", "licenses": [{"sku": "INTUNE_EDU"}]}],
        "companions": [{"sku": "INTUNE_EDU", "requires": ["INTUNE_A_D", {"sku": "X", "disabledPlans": ["P"]}]}],
    }
    policy = parse_policy(json.loads(json.dumps(data)))
    assert [s.sku for s in policy.companions_of("intune_edu")] == ["INTUNE_A_D", "X"]


def test_assign_directly_when_group_fails_is_an_optional_strict_boolean() -> None:
    """Off unless a rule says so; anything but true/false is refused with the field named."""
    base = {"name": "r", "match": "all", "licenses": [{"sku": "EMS"}]}
    assert parse_policy({"rules": [base]}).rules[0].assign_directly_when_group_fails is False
    on = parse_policy({"rules": [{**base, "assignDirectlyWhenGroupFails": True}]})
    assert on.rules[0].assign_directly_when_group_fails is True
    with pytest.raises(PolicyError, match=r"rules\.0\.assignDirectlyWhenGroupFails: Input should be a valid boolean"):
        parse_policy({"rules": [{**base, "assignDirectlyWhenGroupFails": "yes"}]})
