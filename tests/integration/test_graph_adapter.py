"""The Graph adapter: real msgraph-sdk over HTTP against the emulated tenant, errors translated."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kiota_abstractions.api_error import APIError

from licensing.adapters.graph.errors import translate
from licensing.adapters.graph.gateway import GraphGateway
from licensing.core.errors import (
    AccessDenied,
    AssignmentRejected,
    SeatsExhausted,
    TransientError,
    UsageLocationMissing,
    UserNotFound,
)
from licensing.dev.azurite import free_port
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.strict import Strictness
from licensing.settings import Settings
from tests.helpers import EMS, INTUNE_A, RMS_S_PREMIUM, hire

EMSPREMIUM = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"
GROUP = "5f0c8d3e-1b2a-4c6d-9e8f-7a6b5c4d3e2f"


@pytest.fixture
async def graph(tenant: EmulatedTenant) -> AsyncIterator[GraphGateway]:
    """A gateway built from settings exactly as the app builds it."""
    settings = Settings.from_env(
        {
            "LICENSING_GRAPH_URL": tenant.base_url,
            "LICENSING_GRAPH_AUTH": "none",
            "LICENSING_GRAPH_RETRY_DELAY_SECONDS": "0",
        }
    )
    gateway = GraphGateway.from_settings(settings)
    yield gateway
    await gateway.close()


async def test_catalog_reads_seats_and_plans(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """subscribedSkus becomes a Catalog whose free seats match the tenant's."""
    catalog = await graph.catalog()
    ems = catalog.by_part_number("ems")
    assert ems is not None
    assert ems.id == EMS
    assert ems.free == tenant.state.free_units(EMS)
    assert ems.plan_named("intune_a").id == INTUNE_A  # type: ignore[union-attr]
    assert catalog.by_part_number("EMSPREMIUM").free == 0  # type: ignore[union-attr]


async def test_catalog_is_cached_for_its_ttl(tenant: EmulatedTenant) -> None:
    """Within the TTL a second catalog read costs no Graph request; fresh=True forces one."""
    settings = Settings.from_env({"LICENSING_GRAPH_URL": tenant.base_url, "LICENSING_GRAPH_AUTH": "none"})
    gateway = GraphGateway(GraphGateway.from_settings(settings)._client, catalog_ttl=60)
    await gateway.catalog()
    await gateway.catalog()
    assert tenant.state.requests["GET /subscribedSkus"] == 1
    await gateway.catalog(fresh=True)
    assert tenant.state.requests["GET /subscribedSkus"] == 2


async def test_user_by_upn_selects_only_planning_fields(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """A user read by UPN carries attributes and direct vs group licenses."""
    user = hire(tenant, "sel", department="Finance", job_title="Analyst", employee_type="Contractor")
    facts = await graph.get_user(user.user_principal_name.upper())
    assert facts.id == user.id
    assert facts.attributes == {"department": "Finance", "jobTitle": "Analyst", "employeeType": "Contractor"}
    assert facts.usage_location == "US"


async def test_assign_then_plan_states_show_disabled_and_provisioned(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """assignLicense with a disabled set; licenseDetails reports each plan."""
    user = hire(tenant, "plans")
    await graph.assign(user.id, [(EMS, {INTUNE_A})], [])
    [observed] = await graph.plan_states(user.id)
    statuses = {p.name: p.status for p in observed.plans}
    assert observed.part_number == "EMS"
    assert statuses["INTUNE_A"] == "Disabled"
    assert statuses["RMS_S_PREMIUM"] == "Success"


async def test_reassigning_replaces_the_disabled_plan_set(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """Graph replaces disabledPlans; the second call's set is the whole truth, and no second seat is used."""
    user = hire(tenant, "replace")
    free = tenant.state.free_units(EMS)
    await graph.assign(user.id, [(EMS, {INTUNE_A})], [])
    await graph.assign(user.id, [(EMS, {RMS_S_PREMIUM})], [])
    facts = await graph.get_user(user.id)
    assert [h.disabled_plans for h in facts.licenses] == [frozenset({RMS_S_PREMIUM})]
    assert tenant.state.free_units(EMS) == free - 1


async def test_fallback_plan_states_match_license_details(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """With licenseDetails forbidden, assignedPlans gives the same statuses."""
    user = hire(tenant, "same")
    await graph.assign(user.id, [(EMS, {INTUNE_A})], [])
    direct = await graph.plan_states(user.id)
    tenant.faults.license_details_forbidden = True
    fallback = await graph.plan_states(user.id)
    assert {p.name: p.status for p in fallback[0].plans} == {p.name: p.status for p in direct[0].plans}


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unknown-user", UserNotFound, "404 Request_ResourceNotFound: Resource 'nobody@contoso.onmicrosoft.com'"),
        ("no-usage-location", UsageLocationMissing, "invalid usage location"),
        ("no-seats", SeatsExhausted, "does not have any available licenses"),
        ("unknown-sku", AssignmentRejected, "does not correspond to a valid company License"),
    ],
)
async def test_graph_refusals_become_our_permanent_errors(
    graph: GraphGateway, tenant: EmulatedTenant, case: str, error: type[Exception], message: str
) -> None:
    """Each Graph refusal from PLATFORM_NOTES maps to the matching permanent error, keeping Graph's words."""
    user = hire(tenant, f"err-{case}", location=None if case == "no-usage-location" else "US")
    target, sku = {
        "unknown-user": ("nobody@contoso.onmicrosoft.com", EMS),
        "no-usage-location": (user.id, EMS),
        "no-seats": (user.id, EMSPREMIUM),
        "unknown-sku": (user.id, "00000000-0000-0000-0000-000000000001"),
    }[case]
    with pytest.raises(error, match=message):
        await graph.assign(target, [(sku, set())], [])


async def test_throttling_is_retried_by_the_sdk_honouring_retry_after(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """Two 429s then success: the SDK's RetryHandler absorbs them; no error reaches us."""
    tenant.faults.throttle_next = 2
    tenant.faults.retry_after = 1
    catalog = await graph.catalog(fresh=True)
    assert catalog.by_part_number("EMS") is not None
    assert tenant.state.requests["GET /subscribedSkus"] == 3


async def test_persistent_throttling_becomes_a_transient_error(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """Past the SDK's retries a 429 is transient, so the queue redelivers later."""
    tenant.faults.throttle_rate = 1.0
    tenant.faults.retry_after = 0
    with pytest.raises(TransientError, match="429"):
        await graph.catalog(fresh=True)


async def test_soft_deleted_is_read_from_deleted_items_by_object_id_only(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """is_soft_deleted: True for a user in deleted items, False on their 404 (live, purged), a UPN costs no call,
    and a throttled read stays transient."""
    read = "GET /directory/deletedItems/{id}"
    user = hire(tenant, "leaving")
    assert await graph.is_soft_deleted(user.id) is False  # live: not in deleted items
    tenant.state.delete_user(user.id)
    assert await graph.is_soft_deleted(user.id.upper()) is True
    assert await graph.is_soft_deleted(user.user_principal_name) is False
    assert tenant.state.requests[read] == 2
    tenant.faults.throttle_rate, tenant.faults.retry_after = 1.0, 0
    with pytest.raises(TransientError, match="429"):
        await graph.is_soft_deleted(user.id)
    tenant.faults.throttle_rate = 0.0
    tenant.state.delete_user(user.id, permanent=True)
    assert await graph.is_soft_deleted(user.id) is False


def test_forbidden_is_access_denied_naming_the_fix() -> None:
    """A 403 outside licenseDetails tells the admin to grant a permission."""
    error = APIError("denied", 403)
    assert isinstance(translate(error, "read users"), AccessDenied)
    assert "grant the app's identity" in translate(error, "read users").message


async def test_unreachable_graph_is_transient() -> None:
    """Connection refused (nothing listening) is a transient error, not a crash."""
    settings = Settings.from_env(
        {"LICENSING_GRAPH_URL": f"http://127.0.0.1:{free_port()}/v1.0", "LICENSING_GRAPH_AUTH": "none",
         "LICENSING_GRAPH_RETRY_DELAY_SECONDS": "0"}
    )  # fmt: skip
    gateway = GraphGateway.from_settings(settings)
    with pytest.raises(TransientError, match="unreachable"):
        await gateway.catalog()
    await gateway.close()


async def test_app_only_plan_states_join_assigned_and_provisioned_plans(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """licenseDetails refused (403, app-only): plans settle as PendingInput, then Success, never Success too early."""
    tenant.state.strictness = Strictness()
    tenant.state.provisioning_delay = 3600
    user = hire(tenant, "apponly")
    await graph.assign(user.id, [(EMS, {INTUNE_A})], [])
    [settling] = await graph.plan_states(user.id)
    statuses = {p.name: p.status for p in settling.plans}
    assert settling.source == "assignedPlans+provisionedPlans"
    assert statuses["INTUNE_A"] == "Disabled"
    assert {s for name, s in statuses.items() if name != "INTUNE_A"} == {"PendingInput"}
    tenant.state.provisioning_delay = 0
    [settled] = await graph.plan_states(user.id)
    expected = {name: "Disabled" if name == "INTUNE_A" else "Success" for name in statuses}
    assert {p.name: p.status for p in settled.plans} == expected
    assert tenant.state.requests["GET /users/{id}/licenseDetails"] == 2  # asked each time, refused each time


async def test_plan_states_agree_whichever_source_answers(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """With licenseDetails allowed the same statuses come from it, and the source says so (admin-pending included)."""
    tenant.state.strictness = Strictness(license_details_app_only_refused=False)
    user = hire(tenant, "either")
    await graph.assign(user.id, [(EMS, {INTUNE_A})], [])
    tenant.state.require_activation("AAD_PREMIUM")
    [direct] = await graph.plan_states(user.id)
    tenant.state.strictness.license_details_app_only_refused = True
    [joined] = await graph.plan_states(user.id)
    assert (direct.source, joined.source) == ("licenseDetails", "assignedPlans+provisionedPlans")
    assert {p.name: p.status for p in joined.plans} == {p.name: p.status for p in direct.plans}
    assert {p.name: p.status for p in joined.plans}["AAD_PREMIUM"] == "PendingActivation"


async def test_dollar_upn_is_addressed_as_a_quoted_key_on_every_user_call(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """A UPN starting with $ is read, patched, assigned and checked through /users('...'), which Graph requires."""
    tenant.state.strictness = Strictness(usage_location_lag=0)
    upn = "$adm'in@contoso.onmicrosoft.com"
    tenant.state.add_user(upn, "Admin", usage_location=None, department="Sales")
    facts = await graph.get_user(upn)
    assert facts.user_principal_name == upn
    await graph.set_usage_location(upn, "DE")
    await graph.assign(upn, [(EMS, {INTUNE_A})], [])
    [observed] = await graph.plan_states(upn)
    assert observed.part_number == "EMS"
    held = tenant.state.user(upn)
    assert (held.usage_location, [a.sku_id for a in held.assignments]) == ("DE", [EMS])


async def test_group_license_in_error_is_read_with_its_state_and_error(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """licenseAssignmentStates' Error and error code reach the facts: the errored group does not count as holding."""
    tenant.state.strictness = Strictness()
    user = hire(tenant, "grouperr")
    tenant.state.add_group_license(user.id, "EMS", GROUP, state="Error", error="CountViolation")
    facts = await graph.get_user(user.id)
    assert facts.via_group(EMS) is None
    failure = facts.group_failure(EMS)
    assert failure is not None
    assert (failure.state, failure.error) == ("Error", "CountViolation")


async def test_grace_period_seats_are_counted_free_like_the_tenant_counts_them(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """prepaidUnits.warning seats are assignable: the catalog's free is the tenant's enabled + warning - consumed."""
    tenant.state.strictness = Strictness()
    tenant.state.skus[EMSPREMIUM].warning = 3
    premium = (await graph.catalog(fresh=True)).by_part_number("EMSPREMIUM")
    assert premium is not None
    assert (premium.warning, premium.free) == (3, tenant.state.free_units(EMSPREMIUM))
    assert premium.free == 3
    user = hire(tenant, "graced")
    await graph.assign(user.id, [(EMSPREMIUM, set())], [])  # Graph takes a grace-period seat
