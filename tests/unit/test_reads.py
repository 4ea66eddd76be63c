"""Graph JSON as plain data: seats with grace-period units, assignment states and errors, `$` UPN keys."""

import pytest

from licensing.adapters.graph.reads import odata_key, sku_from_json, user_from_json
from tests.unit.catalog import EMS


def test_grace_period_units_are_read_and_free() -> None:
    """prepaidUnits.warning becomes Sku.warning, counted in free (enabled + warning - consumed)."""
    sku = sku_from_json(
        {"skuId": EMS, "skuPartNumber": "EMS", "consumedUnits": 12, "prepaidUnits": {"enabled": 10, "warning": 5}}
    )
    assert (sku.enabled, sku.warning, sku.consumed, sku.free) == (10, 5, 12, 3)


def test_assignment_state_and_error_are_parsed_and_none_means_no_error() -> None:
    """licenseAssignmentStates' state and error reach HeldLicense; Graph's "None" string is no error."""
    user = user_from_json(
        {
            "id": "u1",
            "licenseAssignmentStates": [
                {"skuId": EMS, "assignedByGroup": "g1", "state": "Error", "error": "CountViolation"},
                {"skuId": EMS, "assignedByGroup": None, "state": "Active", "error": "None"},
            ],
        }
    )
    grouped, direct = user.licenses
    assert (grouped.state, grouped.error, grouped.failed) == ("Error", "CountViolation", True)
    assert (direct.state, direct.error, direct.failed) == ("Active", None, False)
    assert user.via_group(EMS) is None
    assert user.group_failure(EMS) is grouped


@pytest.mark.parametrize(
    ("upn", "key"),
    [
        ("$adm@contoso.com", "('$adm@contoso.com')"),
        ("$o'neil@contoso.com", "('$o''neil@contoso.com')"),
        ("$a#b@contoso.com", "('$a%23b@contoso.com')"),
    ],
)
def test_dollar_upns_become_quoted_odata_keys(upn: str, key: str) -> None:
    """A `$` UPN is addressed as ('...') with a single quote doubled and URL-unsafe characters escaped."""
    assert odata_key(upn) == key
