"""Delta queries on the emulated tenant (raw HTTP and the real msgraph-sdk) and the generated benchmark tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody,
)

from licensing.adapters.policy_file import load_policy
from licensing.dev.tenant import EmulatedTenant, Faults, Strictness, TenantState
from licensing.dev.tenant.generate import DRIFT_KINDS, GROUP_ID, generate_tenant
from licensing.dev.tenant.model import User
from tests.integration.support import FakeClock, standalone_tenant

REPO = Path(__file__).resolve().parents[2]
EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
EMSPREMIUM = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"
INTUNE_EDU = "d9d89b70-a645-4c24-b041-8d3cb1884ec7"
INTUNE_A_D = "2b317a4a-77a6-4188-9437-b68a77b4e2c6"
INTUNE_A = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"
DOMAIN = "contoso.onmicrosoft.com"
AISHA, LIAM, NINA = (f"{name}@{DOMAIN}" for name in ("aisha.khan", "liam.obrien", "nina.petrova"))
SELECT = "id,userPrincipalName,usageLocation,assignedLicenses"
EXPIRED = "The sync state generation is not found. The delta token is expired and data must be synchronized again."


@pytest.fixture
async def tenant(clock: FakeClock) -> AsyncIterator[EmulatedTenant]:
    # The lenient profile, whatever STRICT_BY_DEFAULT says: the strict one is test_emulated_strict.py's.
    state = TenantState.default(clock=clock, provisioning_delay=0, strictness=Strictness.lenient())
    async with EmulatedTenant(state, Faults(seed=3)) as running:
        yield running


async def follow(http: httpx.AsyncClient, url: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every page of one delta round, ending with the page that carries the deltaLink."""
    pages = [(await http.get(url, params=params)).json()]
    while "@odata.nextLink" in pages[-1]:
        pages.append((await http.get(pages[-1]["@odata.nextLink"])).json())
    return pages


def assign(sku: str, disabled: list[str]) -> dict[str, Any]:
    return {"addLicenses": [{"skuId": sku, "disabledPlans": disabled}], "removeLicenses": []}


# --- delta over HTTP ------------------------------------------------------------------------------


async def test_full_delta_enumeration_pages_by_200_and_ends_with_a_delta_link(clock: FakeClock) -> None:
    """/users/delta lists every user in pages of 200 linked by $skiptoken, the last with a $deltatoken link."""
    state, _ = generate_tenant(450, clock=clock)
    async with EmulatedTenant(state) as tenant, httpx.AsyncClient(base_url=tenant.base_url) as http:
        base_url = tenant.base_url
        pages = await follow(http, "/users/delta", {"$select": SELECT})
    assert [len(p["value"]) for p in pages] == [200, 200, 50]
    for page in pages[:-1]:
        assert page["@odata.nextLink"].startswith(f"{base_url}/users/delta?$skiptoken=")
        assert "@odata.deltaLink" not in page
    assert pages[-1]["@odata.deltaLink"].startswith(f"{base_url}/users/delta?$deltatoken=")
    assert pages[0]["@odata.context"] == f"{base_url}/$metadata#users({SELECT})"
    ids = [u["id"] for p in pages for u in p["value"]]
    assert ids == list(state.users)
    assert {tuple(u) for p in pages for u in p["value"]} == {tuple(SELECT.split(","))}  # $select kept by links
    assert state.requests["GET /users/delta"] == 3


async def test_deltatoken_latest_gives_an_empty_page_and_a_delta_link(http: httpx.AsyncClient) -> None:
    """$deltatoken=latest answers no users and a deltaLink for now, so only later changes are reported."""
    body = (await http.get("/users/delta", params={"$deltatoken": "latest", "$select": SELECT})).json()
    assert (body["value"], "@odata.nextLink" in body) == ([], False)
    assert (await http.get(body["@odata.deltaLink"])).json()["value"] == []
    await http.patch(f"/users/{LIAM}", json={"usageLocation": "IE"})
    [changed] = (await http.get(body["@odata.deltaLink"])).json()["value"]
    assert (changed["userPrincipalName"], changed["usageLocation"]) == (LIAM, "IE")


async def test_delta_link_returns_the_users_changed_since_and_a_new_delta_link(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """After assignLicense, PATCH and delete, the deltaLink gives exactly those users once (the deleted as @removed)."""
    [*_, last] = await follow(http, "/users/delta", {"$select": SELECT})
    aisha, nina = tenant.state.user(AISHA), tenant.state.user(NINA)
    assert (await http.post(f"/users/{AISHA}/assignLicense", json=assign(EMS, [INTUNE_A]))).status_code == 200
    assert (await http.patch(f"/users/{LIAM}", json={"usageLocation": "IE"})).status_code == 204
    assert (await http.patch(f"/users/{LIAM}", json={"accountEnabled": False})).status_code == 204
    tenant.state.delete_user(NINA)
    await http.patch(f"/users/{AISHA}", json={"usageLocation": aisha.usage_location})  # no change: not reported
    [page] = await follow(http, last["@odata.deltaLink"])
    by_id = {u["id"]: u for u in page["value"]}
    assert list(by_id) == [aisha.id, tenant.state.user(LIAM).id, nina.id]
    assert by_id[aisha.id]["assignedLicenses"] == [{"disabledPlans": [INTUNE_A], "skuId": EMS}]
    assert by_id[tenant.state.user(LIAM).id]["usageLocation"] == "IE"
    assert by_id[nina.id] == {"id": nina.id, "@removed": {"reason": "changed"}}
    assert (await http.get(f"/users/{NINA}")).status_code == 404
    assert (await http.get(page["@odata.deltaLink"])).json()["value"] == []  # the new link starts from now


async def test_changes_during_an_enumeration_are_reported_in_the_next_round(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """A user changed while the client pages (before or after its page) shows up after the deltaLink."""
    tenant.state.delta_page_size = 10
    first = (await http.get("/users/delta", params={"$select": SELECT})).json()
    served, unseen = first["value"][0]["id"], list(tenant.state.users)[-1]
    await http.patch(f"/users/{served}", json={"department": "Legal"})
    await http.patch(f"/users/{unseen}", json={"department": "Legal"})
    rest = await follow(http, first["@odata.nextLink"])
    assert len({u["id"] for p in [first, *rest] for u in p["value"]}) == len(tenant.state.users)
    [again] = await follow(http, rest[-1]["@odata.deltaLink"])
    assert sorted(u["id"] for u in again["value"]) == sorted([served, unseen])


async def test_a_round_of_many_changes_is_paged_like_the_enumeration(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """More changes than a page come back in pages of delta_page_size, oldest change first, each user once."""
    link = (await http.get("/users/delta", params={"$deltatoken": "latest"})).json()["@odata.deltaLink"]
    tenant.state.delta_page_size = 5
    changed = list(tenant.state.users)[:12]
    for user_id in [*changed, changed[0]]:  # the first user changes twice: reported once, as last changed
        tenant.state.set_user(user_id, {"jobTitle": f"title {tenant.state.sequence}"})
    pages = await follow(http, link)
    assert [len(p["value"]) for p in pages] == [5, 5, 2]
    assert [u["id"] for p in pages for u in p["value"]] == [*changed[1:], changed[0]]
    assert pages[0]["value"][0]["displayName"]  # no $select: Graph's default property set


async def test_invalid_or_expired_delta_token_is_sync_state_not_found(
    http: httpx.AsyncClient, tenant: EmulatedTenant, clock: FakeClock
) -> None:
    """A garbled, a foreign or a week-old token is Graph's 400 syncStateNotFound: resynchronize."""
    link = (await http.get("/users/delta", params={"$deltatoken": "latest"})).json()["@odata.deltaLink"]
    garbled = await http.get("/users/delta", params={"$deltatoken": "not-a-token"})
    clock.now += 7 * 86400 + 1
    expired = await http.get(link)
    clock.now -= 7 * 86400 + 1
    assert (await http.get(link)).status_code == 200
    tenant.state.expire_delta_tokens()
    foreign = await http.get(link)
    for response in (garbled, expired, foreign):
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["message"]) == ("syncStateNotFound", EXPIRED)
        assert error["innerError"]["request-id"] == response.headers["request-id"]


async def test_delta_requests_are_counted_and_faulted_like_other_routes(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """GET /users/delta (and the SDK's delta()) is counted under its own route and can be throttled."""
    tenant.faults.throttle_next = 1
    throttled = await http.get("/users/delta()")
    assert (throttled.status_code, throttled.json()["error"]["code"]) == (429, "TooManyRequests")
    assert (await http.get("/users/microsoft.graph.delta()", params={"$deltatoken": "latest"})).status_code == 200
    assert (tenant.state.requests["GET /users/delta"], tenant.state.faulted["GET /users/delta"]) == (2, 1)
    refused = await http.get("/users/delta", params={"$filter": "department eq 'Sales'"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "Request_UnsupportedQuery")


# --- the real SDK ---------------------------------------------------------------------------------


async def test_sdk_follows_next_and_delta_links(graph: GraphServiceClient, tenant: EmulatedTenant) -> None:
    """users.delta.get pages via with_url(odata_next_link); with_url(odata_delta_link) then gives the changes."""
    tenant.state.delta_page_size = 10
    query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=["id", "userPrincipalName"])
    page = await graph.users.delta.get(RequestConfiguration(query_parameters=query))
    sizes = [len(page.value)]
    while page.odata_next_link:
        page = await graph.users.delta.with_url(page.odata_next_link).get()
        sizes.append(len(page.value))
    assert sizes == [10, 10, 10, 2]
    assert page.odata_delta_link
    assert page.value[0].user_principal_name
    body = AssignLicensePostRequestBody(
        add_licenses=[AssignedLicense(sku_id=uuid.UUID(EMS), disabled_plans=[uuid.UUID(INTUNE_A)])],
        remove_licenses=[],
    )
    await graph.users.by_user_id(AISHA).assign_license.post(body)
    tenant.state.delete_user(NINA)
    changes = await graph.users.delta.with_url(page.odata_delta_link).get()
    assert [u.user_principal_name for u in changes.value] == [AISHA, None]
    assert changes.value[1].additional_data["@removed"] == {"reason": "changed"}
    assert changes.odata_delta_link
    assert not changes.odata_next_link
    tenant.state.expire_delta_tokens()
    with pytest.raises(ODataError) as caught:
        await graph.users.delta.with_url(changes.odata_delta_link).get()
    assert (caught.value.response_status_code, caught.value.error.code) == (400, "syncStateNotFound")


# --- the generated tenant -------------------------------------------------------------------------


def test_generated_tenant_has_the_requested_mix_of_drift() -> None:
    """generate_tenant(2000) drifts 10% evenly over the kinds, each with its shape, judged by licensing-policy.json."""
    state, expected = generate_tenant(2000)
    assert list(expected) == list(DRIFT_KINDS)
    assert {kind: len(ids) for kind, ids in expected.items()} == dict.fromkeys(DRIFT_KINDS, 25)
    kind_of = {user_id: kind for kind, ids in expected.items() for user_id in ids}
    policy = load_policy(REPO / "licensing-policy.json")
    parts = {s.part_number: s for s in state.skus.values()}

    def wanted(user: User) -> dict[str, list[str]]:
        attributes = {"department": user.department, "companyName": user.company_name}
        attributes |= {"employeeType": user.employee_type, "jobTitle": user.job_title, "country": user.country}
        rule = policy.rule_for({k: v for k, v in attributes.items() if v})
        assert rule is not None
        specs = list(rule.licenses) + [c for spec in rule.licenses for c in policy.companions_of(spec.sku)]
        return {parts[s.sku].id: sorted(p.id for p in parts[s.sku].plans if p.name in s.disabled_plans) for s in specs}

    def direct(user: User) -> dict[str, list[str]]:
        return {a.sku_id: sorted(a.disabled_plans) for a in user.assignments if a.assigned_by_group is None}

    for user in state.users.values():
        kind, want, held = kind_of.get(user.id), wanted(user), direct(user)
        located, enabled = user.usage_location is not None, user.account_enabled
        if kind in {None, "provisioning-error"}:
            assert (held, located, enabled, len(user.assignments)) == (want, True, True, len(want)), user
        elif kind == "missing-license":
            assert (user.assignments, located) == ([], True)
        elif kind == "usage-location-missing":
            assert (user.assignments, located) == ([], False)
        elif kind == "wrong-disabled-plans":
            assert held.keys() == want.keys()
            assert held != want
        elif kind == "reclaim":
            assert (enabled, held, set(held)) == (False, want, {EMS})
        elif kind == "group-assigned":
            [(sku, group)] = [(a.sku_id, a.assigned_by_group) for a in user.assignments]
            assert (sku, group, held) == (EMS, GROUP_ID, {})
        elif kind == "companion-missing":
            assert (user.department, set(want), held) == ("Teachers", {INTUNE_EDU, INTUNE_A_D}, {INTUNE_EDU: []})
        elif kind == "extra-license":
            assert (want, held) == ({EMS: [INTUNE_A]}, {EMS: [INTUNE_A], EMSPREMIUM: []})
    errored = {u for u, _ in state.status_overrides}
    assert errored == set(expected["provisioning-error"])
    for user_id in errored:
        states = [state.assignment_state(state.users[user_id], a) for a in state.users[user_id].assignments]
        assert states[0] == "ActiveWithError"
    assert all(state.free_units(s) > 0 for s in state.skus)
    assert generate_tenant(2000)[1] == expected  # deterministic under a seed


async def test_paging_ten_thousand_generated_users_with_top_999_takes_11_pages() -> None:
    """GET /users?$top=999 over 10,000 generated users is 11 pages; seats follow writes in a large tenant."""
    state, expected = generate_tenant(10_000)
    async with EmulatedTenant(state) as tenant, httpx.AsyncClient(base_url=tenant.base_url, timeout=30) as http:
        url: str | None = "/users"
        params: dict[str, str] | None = {"$top": "999", "$select": "id,assignedLicenses,licenseAssignmentStates"}
        sizes, ids = [], []
        while url:
            body = (await http.get(url, params=params)).json()
            url, params = body.get("@odata.nextLink"), None
            sizes.append(len(body["value"]))
            ids += [u["id"] for u in body["value"]]
        assert sizes == [999] * 10 + [10]
        assert len(set(ids)) == 10_000
        consumed = state.consumed_units(EMS)
        user = expected["missing-license"][0]
        assert (await http.post(f"/users/{user}/assignLicense", json=assign(EMS, [INTUNE_A]))).status_code == 200
        state.delete_user(expected["reclaim"][0])
        assert state.consumed_units(EMS) == consumed == sum(1 for u in state.users.values() if u.holds(EMS))


def test_standalone_module_serves_a_generated_tenant_and_its_expectations() -> None:
    """python -m licensing.dev.tenant --generate N prints its base URL and serves /_emulator/expected."""
    with standalone_tenant("--generate", "800", "--latency-ms", "5") as base_url:
        root = base_url.removesuffix("/v1.0")
        expected = httpx.get(f"{root}/_emulator/expected", timeout=5).json()
        assert {kind: len(ids) for kind, ids in expected.items()} == dict.fromkeys(DRIFT_KINDS, 10)
        assert httpx.get(f"{root}/_emulator/stats", timeout=5).json()["faults"]["latency_ms"] == 5
        users = httpx.get(f"{base_url}/users", params={"$top": "999"}, timeout=5).json()["value"]
        assert len(users) == 800
