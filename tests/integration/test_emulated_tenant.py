"""The emulated Graph tenant, driven by raw HTTP (exact status and JSON) and by the real msgraph-sdk."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.retry_handler import RetryHandler
from msgraph import GraphServiceClient
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User as GraphUser
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from licensing.dev.tenant import EmulatedTenant, Faults, Strictness, TenantState
from tests.integration.support import FakeClock, standalone_tenant

EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
EMSPREMIUM = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"
INTUNE_A = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"
INTUNE_EDU_PLAN = "da24caf9-af8e-485c-b7c8-e73336da2693"
AAD_PREMIUM = "41781fb2-bc02-4b7c-bd55-b576c07bb09d"
EMS_GROUP = "742c0353-ef75-5754-b52e-cb07db1eb3a8"
DOMAIN = "contoso.onmicrosoft.com"
AISHA = f"aisha.khan@{DOMAIN}"  # new hire, usageLocation US
LIAM = f"liam.obrien@{DOMAIN}"  # new hire, no usageLocation
VICTORIA = f"victoria.hayes@{DOMAIN}"  # new executive: EMS E5 has no free seat
NINA = f"nina.petrova@{DOMAIN}"  # holds EMS directly with INTUNE_A disabled
TOM = f"tom.becker@{DOMAIN}"  # holds EMS through a group
DELAY = 60.0


@pytest.fixture
async def tenant(clock: FakeClock) -> AsyncIterator[EmulatedTenant]:
    # The lenient profile, whatever STRICT_BY_DEFAULT says: the strict one is test_emulated_strict.py's.
    state = TenantState.default(clock=clock, provisioning_delay=DELAY, strictness=Strictness.lenient())
    async with EmulatedTenant(state, Faults(seed=7)) as running:
        yield running


def licenses(add: dict[str, list[str]], remove: list[str] | None = None) -> AssignLicensePostRequestBody:
    return AssignLicensePostRequestBody(
        add_licenses=[
            AssignedLicense(sku_id=uuid.UUID(sku), disabled_plans=[uuid.UUID(p) for p in plans])
            for sku, plans in add.items()
        ],
        remove_licenses=[uuid.UUID(s) for s in remove or []],
    )


def select(*names: str) -> RequestConfiguration[Any]:
    params = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=list(names))
    return RequestConfiguration(query_parameters=params)


async def plan_statuses(graph: GraphServiceClient, user: str) -> dict[str, str]:
    details = await graph.users.by_user_id(user).license_details.get()
    return {p.service_plan_name: p.provisioning_status for d in details.value for p in d.service_plans}


# --- catalog and users --------------------------------------------------------------------------


async def test_subscribed_skus_deserialize_into_sdk_models_with_seat_counts(graph: GraphServiceClient) -> None:
    """GET /subscribedSkus gives SDK SubscribedSku models with seats, plans and Graph's ids."""
    result = await graph.subscribed_skus.get()
    skus = {s.sku_part_number: s for s in result.value}
    seats = {part: (s.prepaid_units.enabled, s.consumed_units) for part, s in skus.items()}
    assert seats == {"EMS": (250, 2), "EMSPREMIUM": (2, 2), "INTUNE_EDU": (30, 0), "INTUNE_A_D": (30, 0)}
    ems = skus["EMS"]
    assert str(ems.sku_id) == EMS
    assert ems.id.endswith(f"_{EMS}")
    assert uuid.UUID(INTUNE_A) in {p.service_plan_id for p in ems.service_plans}
    assert {p.service_plan_name for p in skus["INTUNE_EDU"].service_plans} >= {"INTUNE_EDU", "INTUNE_A"}


async def test_subscribed_skus_refuse_filter_like_graph(http: httpx.AsyncClient) -> None:
    """$filter on /subscribedSkus is refused: Graph supports none on that collection."""
    response = await http.get("/subscribedSkus", params={"$filter": "skuPartNumber eq 'EMS'"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


async def test_user_by_upn_with_select_shows_direct_and_group_licenses(graph: GraphServiceClient) -> None:
    """A user read by UPN with $select carries assignedLicenses, assignedPlans and licenseAssignmentStates."""
    props = ("id", "userPrincipalName", "assignedLicenses", "assignedPlans", "licenseAssignmentStates")
    tom = await graph.users.by_user_id(TOM.upper()).get(select(*props))
    [state] = tom.license_assignment_states
    assert (str(state.sku_id), state.assigned_by_group, state.state, state.error) == (EMS, EMS_GROUP, "Active", "None")
    assert tom.department is None  # not selected
    nina = await graph.users.by_user_id(NINA).get(select(*props))
    assert [(str(a.sku_id), a.disabled_plans) for a in nina.assigned_licenses] == [(EMS, [uuid.UUID(INTUNE_A)])]
    capability = {str(p.service_plan_id): p.capability_status for p in nina.assigned_plans}
    assert (capability[INTUNE_A], capability[AAD_PREMIUM]) == ("Deleted", "Enabled")
    assert nina.license_assignment_states[0].assigned_by_group is None


async def test_select_response_carries_odata_context(http: httpx.AsyncClient) -> None:
    """$select narrows the user to the named properties and names them in @odata.context."""
    body = (await http.get(f"/users/{AISHA}", params={"$select": "id,department"})).json()
    assert set(body) == {"@odata.context", "id", "department"}
    assert body["@odata.context"].endswith("/v1.0/$metadata#users(id,department)/$entity")
    default = (await http.get(f"/users/{AISHA}")).json()
    assert {"businessPhones", "displayName", "userPrincipalName", "id"} <= set(default)
    assert "usageLocation" not in default


async def test_unknown_select_property_is_refused(http: httpx.AsyncClient) -> None:
    """$select of a property the user type lacks is a 400 naming it."""
    response = await http.get(f"/users/{AISHA}", params={"$select": "id,shoeSize"})
    assert response.status_code == 400
    assert "Could not find a property named 'shoeSize'" in response.json()["error"]["message"]


# --- assignLicense --------------------------------------------------------------------------------


async def test_reassigning_replaces_the_disabled_plan_set_and_takes_one_seat(
    graph: GraphServiceClient, tenant: EmulatedTenant
) -> None:
    """Re-posting a held SKU replaces its disabledPlans (no merge; [] re-enables all) and takes no new seat."""
    user = graph.users.by_user_id(AISHA)
    await user.assign_license.post(licenses({EMS: [INTUNE_A]}))
    await user.assign_license.post(licenses({EMS: [AAD_PREMIUM]}))
    held = await user.get(select("assignedLicenses"))
    assert [a.disabled_plans for a in held.assigned_licenses] == [[uuid.UUID(AAD_PREMIUM)]]
    await user.assign_license.post(licenses({EMS: []}))
    held = await user.get(select("assignedLicenses"))
    assert [a.disabled_plans for a in held.assigned_licenses] == [[]]
    skus = await graph.subscribed_skus.get()
    assert next(s.consumed_units for s in skus.value if s.sku_part_number == "EMS") == 3
    assert tenant.state.writes["assignLicense"] == 3


async def test_assign_license_answers_200_with_the_user(http: httpx.AsyncClient) -> None:
    """assignLicense returns 200 and the user object (Graph's default property set)."""
    body = {"addLicenses": [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], "removeLicenses": []}
    response = await http.post(f"/users/{AISHA}/assignLicense", json=body)
    assert response.status_code == 200
    assert response.json()["userPrincipalName"] == AISHA
    assert response.json()["@odata.context"].endswith("$metadata#users/$entity")


async def test_missing_remove_licenses_is_a_bad_request(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """A payload without removeLicenses is refused with Graph's missing-parameter message, changing nothing."""
    response = await http.post(f"/users/{AISHA}/assignLicense", json={"addLicenses": [{"skuId": EMS}]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "Request_BadRequest"
    assert error["message"] == (
        "One or more parameters of the operation 'assignLicense' are missing from the request payload. "
        "The missing parameters are: removeLicenses."
    )
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert tenant.state.consumed_units(EMS) == 2


REFUSALS = [
    pytest.param(
        f"ghost@{DOMAIN}", {EMS: []}, [], 404, "Request_ResourceNotFound",
        f"Resource 'ghost@{DOMAIN}' does not exist or one of its queried reference-property objects are not present.",
        id="unknown-user",
    ),
    pytest.param(
        LIAM, {EMS: []}, [], 400, "Request_BadRequest",
        "License assignment cannot be done for user with invalid usage location.", id="no-usage-location",
    ),
    pytest.param(
        AISHA, {"11111111-2222-3333-4444-555555555555": []}, [], 400, "Request_BadRequest",
        "License 11111111-2222-3333-4444-555555555555 does not correspond to a valid company License.",
        id="unknown-sku",
    ),
    pytest.param(
        VICTORIA, {EMSPREMIUM: []}, [], 400, "Request_BadRequest",
        f"Subscription {EMSPREMIUM} does not have any available licenses.", id="no-free-seat",
    ),
    pytest.param(
        AISHA, {EMS: [INTUNE_EDU_PLAN]}, [], 400, "Request_BadRequest",
        f"The disabled service plan(s) {INTUNE_EDU_PLAN} do not belong to license {EMS}.", id="plan-not-in-sku",
    ),
    pytest.param(
        AISHA, {}, [EMS], 400, "Request_BadRequest", "User does not have a corresponding license.",
        id="remove-unheld",
    ),
    pytest.param(
        TOM, {}, [EMS], 400, "Request_BadRequest",
        "User license is inherited from a group membership and it cannot be removed directly from the user.",
        id="remove-group-license",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("user", "add", "remove", "status", "code", "message"), REFUSALS)
async def test_graph_refusals_reach_the_sdk_as_odata_errors(
    graph: GraphServiceClient,
    user: str,
    add: dict[str, list[str]],
    remove: list[str],
    status: int,
    code: str,
    message: str,
) -> None:
    """Each assignLicense refusal arrives as ODataError with Graph's status, code and message."""
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id(user).assign_license.post(licenses(add, remove))
    error = caught.value
    assert (error.response_status_code, error.error.code, error.error.message) == (status, code, message)
    assert error.error.inner_error.request_id


async def test_seats_freed_by_a_removal_can_be_assigned(graph: GraphServiceClient) -> None:
    """Removing an executive's EMS E5 frees the seat the new executive was refused."""
    await graph.users.by_user_id(f"eleanor.vance@{DOMAIN}").assign_license.post(licenses({}, [EMSPREMIUM]))
    await graph.users.by_user_id(VICTORIA).assign_license.post(licenses({EMSPREMIUM: []}))
    held = await graph.users.by_user_id(VICTORIA).get(select("assignedLicenses"))
    assert [str(a.sku_id) for a in held.assigned_licenses] == [EMSPREMIUM]


async def test_direct_and_group_licenses_of_one_sku_list_once(
    graph: GraphServiceClient, tenant: EmulatedTenant
) -> None:
    """A direct assignment beside a group one takes no seat; assignedLicenses lists the SKU once."""
    await graph.users.by_user_id(TOM).assign_license.post(licenses({EMS: [INTUNE_A]}))
    tom = await graph.users.by_user_id(TOM).get(select("assignedLicenses", "licenseAssignmentStates"))
    assert [(str(a.sku_id), a.disabled_plans) for a in tom.assigned_licenses] == [(EMS, [])]  # the group enables all
    assert sorted(str(s.assigned_by_group) for s in tom.license_assignment_states) == sorted([EMS_GROUP, "None"])
    assert tenant.state.consumed_units(EMS) == 2


# --- provisioning -------------------------------------------------------------------------------


async def test_license_details_move_from_pending_to_success_after_the_delay(
    graph: GraphServiceClient, clock: FakeClock
) -> None:
    """Enabled plans are PendingProvisioning until the delay passes, then Success; disabled ones are Disabled."""
    await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMS: [INTUNE_A]}))
    first = await plan_statuses(graph, AISHA)
    assert (first["INTUNE_A"], first["AAD_PREMIUM"]) == ("Disabled", "PendingProvisioning")
    clock.advance(DELAY)
    later = await plan_statuses(graph, AISHA)
    assert (later["INTUNE_A"], later["AAD_PREMIUM"], later["MFA_PREMIUM"]) == ("Disabled", "Success", "Success")


async def test_reenabling_a_plan_restarts_only_its_provisioning(graph: GraphServiceClient, clock: FakeClock) -> None:
    """A plan switched back on provisions afresh while the plans already on stay Success."""
    user = graph.users.by_user_id(AISHA)
    await user.assign_license.post(licenses({EMS: [INTUNE_A]}))
    clock.advance(DELAY)
    await user.assign_license.post(licenses({EMS: []}))
    statuses = await plan_statuses(graph, AISHA)
    assert (statuses["INTUNE_A"], statuses["AAD_PREMIUM"]) == ("PendingProvisioning", "Success")
    clock.advance(DELAY)
    assert (await plan_statuses(graph, AISHA))["INTUNE_A"] == "Success"


async def test_forced_plan_status_shows_in_details_and_assignment_state(
    graph: GraphServiceClient, tenant: EmulatedTenant
) -> None:
    """A plan pinned to Error shows Error in licenseDetails and ActiveWithError on the assignment."""
    tenant.state.force_status(NINA, "AAD_PREMIUM", "Error")
    assert (await plan_statuses(graph, NINA))["AAD_PREMIUM"] == "Error"
    nina = await graph.users.by_user_id(NINA).get(select("licenseAssignmentStates"))
    assert nina.license_assignment_states[0].state == "ActiveWithError"


async def test_license_details_can_be_refused_with_403(graph: GraphServiceClient, tenant: EmulatedTenant) -> None:
    """With the fault on, licenseDetails answers 403 Authorization_RequestDenied as for a missing permission."""
    tenant.faults.license_details_forbidden = True
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id(NINA).license_details.get()
    error = caught.value
    assert (error.response_status_code, error.error.code) == (403, "Authorization_RequestDenied")
    assert error.error.message == "Insufficient privileges to complete the operation."


# --- listing --------------------------------------------------------------------------------------


async def test_users_page_through_odata_next_link(graph: GraphServiceClient, tenant: EmulatedTenant) -> None:
    """$top pages the listing; the SDK follows each absolute @odata.nextLink with with_url."""
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=["id", "displayName"], top=10)
    page = await graph.users.get(RequestConfiguration(query_parameters=query))
    pages = [page]
    while page.odata_next_link:
        assert page.odata_next_link.startswith(tenant.base_url + "/users?")
        page = await graph.users.with_url(page.odata_next_link).get()
        pages.append(page)
    ids = [u.id for p in pages for u in p.value]
    assert [len(p.value) for p in pages] == [10, 10, 10, 2]
    assert len(set(ids)) == len(tenant.state.users) == 32
    assert pages[-1].value[0].display_name  # $select survived into the next links


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        (f"assignedLicenses/any(x:x/skuId eq {EMS})", {NINA, TOM}),
        ("accountEnabled eq false", {f"kevin.osullivan@{DOMAIN}"}),
        (f"userPrincipalName eq '{AISHA.upper()}'", {AISHA}),
        ("department eq 'Teachers' and usageLocation eq 'US'", {f"rachel.green@{DOMAIN}", f"samuel.okafor@{DOMAIN}"}),
    ],
)
async def test_users_filter_supports_the_clauses_the_app_uses(
    http: httpx.AsyncClient, clause: str, expected: set[str]
) -> None:
    """$filter on assigned SKU, accountEnabled, UPN and attributes (joined by and) selects the right users."""
    response = await http.get("/users", params={"$filter": clause, "$select": "userPrincipalName"})
    assert response.status_code == 200
    assert {u["userPrincipalName"] for u in response.json()["value"]} == expected


async def test_users_filter_by_id_matches_one_user(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """id eq '<guid>' finds exactly that user."""
    aisha = tenant.state.user(AISHA)
    response = await http.get("/users", params={"$filter": f"id eq '{aisha.id}'"})
    assert [u["id"] for u in response.json()["value"]] == [aisha.id]


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"$filter": "city eq 'Paris'"}, "Request_UnsupportedQuery", "property 'city' of resource 'User'"),
        (
            {"$top": "1000"},
            "Request_UnsupportedQuery",
            "Invalid page size specified: '1000'. Must be between 1 and 999",
        ),
        ({"$count": "true"}, "Request_BadRequest", "$count is not currently supported."),
        ({"$skiptoken": "not-a-token"}, "Directory_ExpiredPageToken", "page token value has expired"),
    ],
)
async def test_unsupported_list_queries_are_refused(
    http: httpx.AsyncClient, params: dict[str, str], code: str, message: str
) -> None:
    """Unsupported filters, $top over 999, $count without ConsistencyLevel and bad page tokens are 400s."""
    response = await http.get("/users", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert message in response.json()["error"]["message"]


async def test_count_with_eventual_consistency_adds_odata_count(http: httpx.AsyncClient) -> None:
    """$count=true with ConsistencyLevel: eventual adds @odata.count of every match, not just the page."""
    params = {"$count": "true", "$top": "5", "$filter": "accountEnabled eq true"}
    response = await http.get("/users", params=params, headers={"ConsistencyLevel": "eventual"})
    assert (response.json()["@odata.count"], len(response.json()["value"])) == (31, 5)


# --- $batch ---------------------------------------------------------------------------------------


async def test_batch_of_twenty_answers_each_and_counts_each(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """A $batch of 20 answers 200 with one response per id; each sub-request is counted under its route."""
    ids = list(tenant.state.users)[:19]
    requests = [{"id": str(n), "method": "GET", "url": f"/users/{i}/licenseDetails"} for n, i in enumerate(ids)]
    requests.append({"id": "skus", "method": "GET", "url": "subscribedSkus"})
    response = await http.post("/$batch", json={"requests": requests})
    assert response.status_code == 200
    answers = {a["id"]: a for a in response.json()["responses"]}
    assert set(answers) == {r["id"] for r in requests}
    assert {a["status"] for a in answers.values()} == {200}
    assert answers["skus"]["body"]["value"][0]["skuPartNumber"] == "EMS"
    counts = tenant.state.requests
    assert (counts["POST /$batch"], counts["GET /users/{id}/licenseDetails"], counts["GET /subscribedSkus"]) == (
        1,
        19,
        1,
    )


async def test_batch_over_twenty_is_refused(http: httpx.AsyncClient) -> None:
    """A $batch of 21 requests is a 400 for the whole batch."""
    requests = [{"id": str(n), "method": "GET", "url": "/subscribedSkus"} for n in range(21)]
    response = await http.post("/$batch", json={"requests": requests})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


async def test_batch_sub_request_can_be_throttled_while_the_batch_succeeds(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """One sub-request answers 429 with Retry-After in its own headers; the batch itself is 200."""
    tenant.faults.throttle_next, tenant.faults.retry_after = 1, 3
    requests = [{"id": n, "method": "GET", "url": f"/users/{AISHA}"} for n in ("a", "b")]
    response = await http.post("/$batch", json={"requests": requests})
    assert response.status_code == 200
    first, second = response.json()["responses"]
    assert (first["status"], first["headers"]["Retry-After"], first["body"]["error"]["code"]) == (
        429,
        "3",
        "TooManyRequests",
    )
    assert second["status"] == 200


async def test_batch_writes_run_in_order_with_depends_on(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """PATCH then assignLicense in one batch succeed in order; a request depending on a failure gets 424."""

    def sub(n: str, method: str, url: str, body: Any = None, after: str | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"id": n, "method": method, "url": url, "dependsOn": [after] if after else []}
        return item | ({"headers": {"Content-Type": "application/json"}, "body": body} if body else {})

    assign = {"addLicenses": [{"skuId": EMS, "disabledPlans": []}], "removeLicenses": []}
    requests = [
        sub("1", "PATCH", f"/users/{LIAM}", {"usageLocation": "IE"}),
        sub("2", "POST", f"/users/{LIAM}/assignLicense", assign, after="1"),
        sub("3", "PATCH", f"/users/{LIAM}", {"usageLocation": "ZZ"}),
        sub("4", "GET", f"/users/{LIAM}", after="3"),
    ]
    response = await http.post("/$batch", json={"requests": requests})
    assert [a["status"] for a in response.json()["responses"]] == [204, 200, 400, 424]
    assert tenant.state.user(LIAM).usage_location == "IE"
    assert tenant.state.user(LIAM).holds(EMS)


# --- throttling and faults ------------------------------------------------------------------------


async def test_throttled_request_carries_retry_after_and_graph_body(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """A throttled request is 429 with Retry-After and a TooManyRequests body; the next one succeeds."""
    tenant.faults.throttle_next, tenant.faults.retry_after = 1, 7
    throttled = await http.get("/subscribedSkus")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    error = throttled.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["request-id"] == throttled.headers["request-id"]
    assert (await http.get("/subscribedSkus")).status_code == 200
    assert tenant.state.faulted["GET /subscribedSkus"] == 1


async def test_service_unavailable_is_503_with_retry_after(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """unavailable_rate answers 503 serviceNotAvailable with Retry-After."""
    tenant.faults.unavailable_rate = 1.0
    response = await http.get(f"/users/{AISHA}")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.json()["error"]["code"] == "serviceNotAvailable"


async def test_sdk_retry_handler_honours_retry_after_and_succeeds(
    graph: GraphServiceClient, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's RetryHandler waits the Retry-After it was given and retries the 429s to success."""
    waits: list[float] = []
    computed = RetryHandler.get_delay_time

    def record_without_sleeping(self: Any, retry_count: int, response: Any = None, delay: float = 3.0) -> float:
        if response is not None and response.status_code == 429:  # it also computes one for the final 200
            waits.append(computed(self, retry_count, response, delay))
        return 0.0  # the test switch: the handler's own computation is checked, the sleep skipped

    monkeypatch.setattr(RetryHandler, "get_delay_time", record_without_sleeping)
    tenant.faults.throttle_next, tenant.faults.retry_after = 2, 2
    result = await graph.subscribed_skus.get()
    assert len(result.value) == 4
    assert waits == [2, 2]
    assert (tenant.state.requests["GET /subscribedSkus"], tenant.state.faulted["GET /subscribedSkus"]) == (3, 2)


async def test_throttled_assign_license_is_applied_once_after_the_sdk_retries(
    graph: GraphServiceClient, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 on assignLicense changes nothing; the SDK's retry of the POST then applies it exactly once."""
    monkeypatch.setattr(RetryHandler, "get_delay_time", lambda *_args, **_kwargs: 0.0)
    tenant.faults.throttle_next = 1
    await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMS: [INTUNE_A]}))
    assert tenant.state.requests["POST /users/{id}/assignLicense"] == 2
    assert (tenant.state.writes["assignLicense"], tenant.state.consumed_units(EMS)) == (1, 3)


def test_throttling_is_deterministic_under_a_seed() -> None:
    """The same seed throttles the same requests; another seed throttles others."""

    def pattern(seed: int) -> list[bool]:
        faults = Faults(throttle_rate=0.3, seed=seed)
        return [faults.draw() is not None for _ in range(200)]

    assert pattern(42) == pattern(42)
    assert pattern(42) != pattern(43)
    assert 40 < sum(pattern(42)) < 80


async def test_latency_delays_each_http_request(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """latency_ms holds every Graph request back by that long."""
    tenant.faults.latency_ms = 80
    started = time.perf_counter()
    await http.get("/subscribedSkus")
    assert time.perf_counter() - started >= 0.08


# --- PATCH, routing, admin ------------------------------------------------------------------------


async def test_patch_sets_usage_location_and_refuses_bad_values(
    graph: GraphServiceClient, http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """PATCH stores an ISO country (upper-cased) and refuses unknown codes and read-only properties."""
    await graph.users.by_user_id(LIAM).patch(GraphUser(usage_location="ie"))
    assert tenant.state.user(LIAM).usage_location == "IE"
    bad = await http.patch(f"/users/{LIAM}", json={"usageLocation": "XX"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "Invalid value specified for property 'usageLocation' of resource 'User'."
    read_only = await http.patch(f"/users/{LIAM}", json={"assignedLicenses": []})
    assert read_only.status_code == 400
    assert tenant.state.user(LIAM).usage_location == "IE"


async def test_unknown_routes_get_graph_shaped_errors(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """Unknown segments are 400, wrong methods 405, paths outside /v1.0 404; all with Graph's error body."""
    unknown = await http.get("/groups")
    wrong_method = await http.put(f"/users/{AISHA}", json={})  # DELETE /users/{id} is a route now
    outside = await http.get(f"{tenant.root_url}/beta/users")
    assert [r.status_code for r in (unknown, wrong_method, outside)] == [400, 405, 404]
    assert unknown.json()["error"]["message"] == "Resource not found for the segment 'groups'."
    for response in (unknown, wrong_method, outside):
        assert response.json()["error"]["innerError"]["request-id"] == response.headers["request-id"]


async def test_request_counters_are_kept_per_route_template(graph: GraphServiceClient, tenant: EmulatedTenant) -> None:
    """Requests are counted by method and route template; /_emulator/stats shows them; reset clears them."""
    await graph.users.by_user_id(AISHA).get()
    await graph.users.by_user_id(NINA).get()
    await graph.users.by_user_id(LIAM).patch(GraphUser(department="Sales"))
    async with httpx.AsyncClient(base_url=tenant.root_url) as admin:
        stats = (await admin.get("/_emulator/stats")).json()
        assert stats["requests"] == {"GET /users/{id}": 2, "PATCH /users/{id}": 1}
        assert stats["writes"] == {"updateUser": 1}
        assert (await admin.post("/_emulator/reset-counters")).status_code == 204
    assert not tenant.state.requests


async def test_admin_endpoints_are_never_faulted(tenant: EmulatedTenant) -> None:
    """With every Graph request throttled, /_emulator still answers and can create users and lift faults."""
    tenant.faults.throttle_rate = 1.0
    async with httpx.AsyncClient(base_url=tenant.root_url) as client:
        assert (await client.get("/_emulator/health")).status_code == 200
        new_user = {"userPrincipalName": f"zoe.quinn@{DOMAIN}", "displayName": "Zoe Quinn", "department": "Sales"}
        created = await client.post("/_emulator/users", json=new_user)
        assert created.status_code == 201
        assert (await client.get(f"/v1.0/users/{created.json()['id']}")).status_code == 429
        faults = await client.post("/_emulator/faults", json={"throttle_rate": 0})
        assert faults.json()["throttle_rate"] == 0
        assert (await client.get(f"/v1.0/users/zoe.quinn@{DOMAIN}")).json()["displayName"] == "Zoe Quinn"
        refused = await client.post("/_emulator/faults", json={"throttle_rate": 2})
        assert refused.status_code == 400


def test_emulated_tenant_binds_loopback_only() -> None:
    """Anything but a loopback address is refused before binding."""
    for host in ("0.0.0.0", "10.1.2.3", "example.com"):
        with pytest.raises(ValueError, match="loopback only"):
            EmulatedTenant(host=host)
    for host in ("127.0.0.2", "::1", "localhost"):
        EmulatedTenant(host=host)


def test_default_fixture_has_the_demo_population() -> None:
    """The shipped seed has unlicensed new hires, teachers, executives short of EMS E5 and existing holders."""
    state = TenantState.default()
    unlicensed = [u for u in state.users.values() if not u.assignments and u.account_enabled]
    assert len(unlicensed) >= 24
    located = sum(1 for u in unlicensed if u.usage_location)
    assert len(unlicensed) // 3 < located < 2 * len(unlicensed) // 3
    teachers = [u for u in unlicensed if u.department == "Teachers"]
    assert len(teachers) == 3
    assert {u.company_name for u in teachers} == {"Contoso School"}
    assert len([u for u in unlicensed if u.department == "Executive"]) == 2
    assert state.free_units(EMSPREMIUM) == 0
    assert state.user(NINA).assignments[0].disabled_plans == [INTUNE_A]
    assert state.user(TOM).assignments[0].assigned_by_group == EMS_GROUP


def test_standalone_module_prints_its_base_url() -> None:
    """python -m licensing.dev.tenant prints its base URL on one line and serves Graph there."""
    with standalone_tenant("--port", "0", "--provisioning-delay", "0") as base_url:
        response = httpx.get(f"{base_url}/subscribedSkus", timeout=5)
        assert response.status_code == 200
