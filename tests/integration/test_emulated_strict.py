"""The emulated tenant's strict profile (Graph as its docs describe it), over HTTP and the real msgraph-sdk,
and the lenient profile that stays the default until the app copes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.device_management.managed_devices.managed_devices_request_builder import (
    ManagedDevicesRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User as GraphUser
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

from licensing.dev.tenant import EmulatedTenant, Faults, ServicePlan, Sku, Strictness, TenantState, strict
from licensing.dev.tenant import __main__ as cli
from tests.integration.support import FakeClock, standalone_tenant
from tests.integration.test_emulated_subscriptions import Receiver
from tests.integration.test_emulated_tenant import (
    AISHA,
    DOMAIN,
    EMS,
    EMSPREMIUM,
    INTUNE_A,
    LIAM,
    NINA,
    TOM,
    VICTORIA,
    licenses,
    plan_statuses,
    select,
)

DELAY = 60.0
GROUP = "5b0e8f2a-3c1d-4e6f-8a9b-0c1d2e3f4a5b"
EXCHANGE_STANDARD_SKU = "4b9405b0-7788-4568-add1-99614e613b69"
EXCHANGE_ENTERPRISE_SKU = "19ec0d23-8335-4cbd-94ac-6050e30712fa"
EXCHANGE_S_STANDARD = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"
EXCHANGE_S_ENTERPRISE = "efb87545-963c-4e0d-99df-69c6916d9eb0"
NEW_PLAN = "0f7b9d4e-6a2c-4b8e-9d1f-3e5a7c9b1d2f"
ADMIN = f"$adm@{DOMAIN}"


@pytest.fixture
async def tenant(clock: FakeClock) -> AsyncIterator[EmulatedTenant]:
    """The shipped fixture in the strict profile, on a clock the test moves."""
    state = TenantState.default(clock=clock, provisioning_delay=DELAY, strictness=Strictness())
    async with EmulatedTenant(state, Faults(seed=7)) as running:
        yield running


@pytest.fixture
async def admin(tenant: EmulatedTenant) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP to the emulator's own /_emulator controls."""
    async with httpx.AsyncClient(base_url=tenant.root_url) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A loopback webhook that answers the handshake and queues notifications."""
    hook = Receiver()
    await hook.server.start_server()
    yield hook
    hook.release.set()
    await hook.server.close()


def allow_license_details(tenant: EmulatedTenant) -> None:
    tenant.state.strictness.license_details_app_only_refused = False


async def subscribe(http: httpx.AsyncClient, receiver: Receiver, clock: FakeClock) -> None:
    expires = dt.datetime.fromtimestamp(clock.now, dt.UTC) + dt.timedelta(days=1)
    body = {
        "changeType": "updated,deleted",
        "notificationUrl": receiver.url(),
        "resource": "users",
        "expirationDateTime": expires.isoformat(),
    }
    assert (await http.post("/subscriptions", json=body)).status_code == 201


async def notifications(tenant: EmulatedTenant, receiver: Receiver) -> list[tuple[str, str]]:
    """(changeType, user id) of every notification delivered so far."""
    await tenant.webhooks.drain()
    seen = []
    while not receiver.notifications.empty():
        _, payload, _ = receiver.notifications.get_nowait()
        seen += [(n["changeType"], n["resourceData"]["id"]) for n in payload["value"]]
    return seen


# --- 1. licenseDetails app-only -------------------------------------------------------------------


async def test_license_details_are_refused_app_only_also_inside_batch(
    graph: GraphServiceClient, http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """licenseDetails answers 403 Authorization_RequestDenied, plain and in $batch, until the switch is off."""
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id(NINA).license_details.get()
    error = caught.value
    assert (error.response_status_code, error.error.code) == (403, "Authorization_RequestDenied")
    assert error.error.message == "Insufficient privileges to complete the operation."
    batch = {"requests": [{"id": "1", "method": "GET", "url": f"/users/{NINA}/licenseDetails"}]}
    [answer] = (await http.post("/$batch", json=batch)).json()["responses"]
    assert (answer["status"], answer["body"]["error"]["code"]) == (403, "Authorization_RequestDenied")
    allow_license_details(tenant)
    assert (await plan_statuses(graph, NINA))["INTUNE_A"] == "Disabled"


# --- 2. and 3. provisionedPlans, settling, activation -----------------------------------------------


async def test_provisioned_plans_list_every_plan_and_keep_deleted_ones(
    graph: GraphServiceClient, tenant: EmulatedTenant, clock: FakeClock
) -> None:
    """provisionedPlans has an entry per plan (several per service), PendingInput while settling; a disabled plan
    keeps a Deleted entry, listed last."""
    await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMS: [INTUNE_A]}))
    user = await graph.users.by_user_id(AISHA).get(select("assignedPlans", "provisionedPlans"))
    entries = [(p.service, p.capability_status, p.provisioning_status) for p in user.provisioned_plans]
    expected = {"AADPremiumService", "RMSOnline", "Adallom", "exchange", "MultiFactorService"}
    live = [e for e in entries if e[1] == "Enabled"]
    assert {service for service, _, _ in live} == expected
    assert sum(service == "RMSOnline" for service, _, _ in live) == 2  # RMS_S_PREMIUM and RMS_S_ENTERPRISE
    assert {status for _, _, status in live} == {"PendingInput"}
    assert entries[len(live) :] == [("SCO", "Deleted", "Success")]  # INTUNE_A is disabled
    assert {p.service for p in user.assigned_plans} == expected | {"SCO"}
    clock.advance(DELAY)
    tenant.state.force_status(AISHA, "RMS_S_PREMIUM", "Error")  # RMS_S_ENTERPRISE, same service, is Success
    user = await graph.users.by_user_id(AISHA).get(select("provisionedPlans"))
    rms = sorted(p.provisioning_status for p in user.provisioned_plans if p.service == "RMSOnline")
    assert rms == ["Error", "Success"]


async def test_new_plans_settle_as_pending_input_then_success(
    graph: GraphServiceClient, tenant: EmulatedTenant, clock: FakeClock
) -> None:
    """A newly enabled plan shows PendingInput (not PendingProvisioning) until the delay passes."""
    allow_license_details(tenant)
    await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMS: [INTUNE_A]}))
    first = await plan_statuses(graph, AISHA)
    assert (first["AAD_PREMIUM"], first["INTUNE_A"]) == ("PendingInput", "Disabled")
    clock.advance(DELAY)
    assert (await plan_statuses(graph, AISHA))["AAD_PREMIUM"] == "Success"


async def test_plan_waits_in_pending_activation_until_the_admin_activates_it(
    graph: GraphServiceClient, tenant: EmulatedTenant, admin: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A plan that needs activation is PendingActivation for every holder, whatever the time, until activated."""
    allow_license_details(tenant)
    await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMS: []}))
    assert (await admin.post("/_emulator/activation", json={"require": "INTUNE_A"})).status_code == 204
    clock.advance(10 * DELAY)
    assert (await plan_statuses(graph, AISHA))["INTUNE_A"] == "PendingActivation"
    assert (await plan_statuses(graph, TOM))["INTUNE_A"] == "PendingActivation"
    user = await graph.users.by_user_id(AISHA).get(select("provisionedPlans"))
    assert {p.service: p.provisioning_status for p in user.provisioned_plans}["SCO"] == "PendingActivation"
    assert (await admin.post("/_emulator/activation", json={"activate": "INTUNE_A"})).status_code == 204
    assert (await plan_statuses(graph, AISHA))["INTUNE_A"] == "Success"


async def test_plan_added_to_a_sku_is_pending_provisioning_until_activated(
    graph: GraphServiceClient, tenant: EmulatedTenant, admin: httpx.AsyncClient
) -> None:
    """A plan Microsoft adds to a SKU arrives enabled for holders, PendingProvisioning until activated."""
    allow_license_details(tenant)
    plan = {"id": NEW_PLAN, "name": "NEW_PLAN", "service": "exchange"}
    assert (await admin.post("/_emulator/skus/EMS/plans", json=plan)).status_code == 201
    assert (await plan_statuses(graph, NINA))["NEW_PLAN"] == "PendingProvisioning"
    nina = await graph.users.by_user_id(NINA).get(select("assignedPlans", "provisionedPlans"))
    assert {str(p.service_plan_id): p.capability_status for p in nina.assigned_plans}[NEW_PLAN] == "Enabled"
    assert {p.service: p.provisioning_status for p in nina.provisioned_plans}["exchange"] == "PendingProvisioning"
    skus = {s.sku_part_number: s for s in (await graph.subscribed_skus.get()).value}
    catalog = {p.service_plan_name: p.provisioning_status for p in skus["EMS"].service_plans}
    assert catalog["NEW_PLAN"] == "PendingProvisioning"
    tenant.state.activate("NEW_PLAN")
    assert (await plan_statuses(graph, NINA))["NEW_PLAN"] == "Success"


# --- 4. group licenses in error ---------------------------------------------------------------------


async def test_group_license_in_error_is_listed_but_neither_assigned_nor_counted(
    graph: GraphServiceClient, tenant: EmulatedTenant, admin: httpx.AsyncClient
) -> None:
    """A group license in state Error shows in licenseAssignmentStates only; ActiveWithError is assigned."""
    seats = tenant.state.consumed_units(EMSPREMIUM)
    tenant.state.add_group_license(AISHA, "EMSPREMIUM", GROUP, state="Error", error="CountViolation")
    props = ("assignedLicenses", "assignedPlans", "licenseAssignmentStates")
    aisha = await graph.users.by_user_id(AISHA).get(select(*props))
    [entry] = aisha.license_assignment_states
    assert (str(entry.sku_id), entry.assigned_by_group, entry.state, entry.error) == (
        EMSPREMIUM,
        GROUP,
        "Error",
        "CountViolation",
    )
    assert (aisha.assigned_licenses, aisha.assigned_plans) == ([], [])
    assert tenant.state.consumed_units(EMSPREMIUM) == seats
    body = {"user": LIAM, "sku": "EMS", "group": GROUP, "state": "ActiveWithError", "error": "Other"}
    assert (await admin.post("/_emulator/group-licenses", json=body)).status_code == 201
    liam = await graph.users.by_user_id(LIAM).get(select(*props))
    assert [str(a.sku_id) for a in liam.assigned_licenses] == [EMS]
    assert [(s.state, s.error) for s in liam.license_assignment_states] == [("ActiveWithError", "Other")]


# --- 5. usageLocation replication lag ---------------------------------------------------------------


async def test_assign_license_right_after_setting_usage_location_is_refused_for_a_while(
    graph: GraphServiceClient, clock: FakeClock
) -> None:
    """For usage_location_lag seconds after PATCH usageLocation, assignLicense sees an invalid usage location."""
    await graph.users.by_user_id(LIAM).patch(GraphUser(usage_location="IE"))
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id(LIAM).assign_license.post(licenses({EMS: []}))
    error = caught.value
    assert (error.response_status_code, error.error.code) == (400, "Request_BadRequest")
    assert error.error.message == "License assignment cannot be done for user with invalid usage location."
    clock.advance(2.0)
    await graph.users.by_user_id(LIAM).assign_license.post(licenses({EMS: []}))


# --- 6. expired delta tokens ------------------------------------------------------------------------


async def test_stale_delta_token_is_410_gone_with_a_location_to_start_over(
    graph: GraphServiceClient, http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """An expired delta link answers 410 resyncRequired; its Location starts a full round with the same $select."""
    response = await http.get("/users/delta", params={"$select": "id,displayName"})
    page = response.json()
    while "@odata.nextLink" in page:
        page = (await http.get(page["@odata.nextLink"])).json()
    tenant.state.expire_delta_tokens()
    with pytest.raises(ODataError) as caught:
        await graph.users.delta.with_url(page["@odata.deltaLink"]).get()
    error = caught.value
    assert (error.response_status_code, error.error.code) == (410, "resyncRequired")
    location = error.response_headers["location"]
    assert location.startswith(f"{tenant.base_url}/users/delta?")
    fresh = (await http.get(location)).json()
    assert len(fresh["value"]) == len(tenant.state.users)
    assert set(fresh["value"][0]) == {"id", "displayName"}
    tenant.state.strictness.delta_expired = "syncStateNotFound"
    tenant.state.expire_delta_tokens()
    old = await http.get(location)
    assert (old.status_code, old.json()["error"]["code"]) == (400, "syncStateNotFound")


# --- 7. soft delete and notifications of the app's own writes ---------------------------------------


async def test_soft_delete_notifies_updated_and_permanent_delete_notifies_deleted(
    graph: GraphServiceClient,
    http: httpx.AsyncClient,
    tenant: EmulatedTenant,
    receiver: Receiver,
    clock: FakeClock,
) -> None:
    """DELETE /users/{id} soft-deletes (GET is 404) and notifies updated; a permanent delete notifies deleted."""
    await subscribe(http, receiver, clock)
    nina = tenant.state.user(NINA).id
    await graph.users.by_user_id(NINA).delete()
    gone = await http.get(f"/users/{nina}")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "Request_ResourceNotFound")
    assert await notifications(tenant, receiver) == [("updated", nina)]
    tenant.state.delete_user(nina, permanent=True)  # purge the soft-deleted user
    assert await notifications(tenant, receiver) == [("deleted", nina)]
    assert nina not in tenant.state.deleted_users


async def test_deleted_items_hold_a_soft_deleted_user_until_it_is_purged(
    graph: GraphServiceClient, http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """GET /directory/deletedItems/{id} answers a soft-deleted user as #microsoft.graph.user with $select, and 404
    Request_ResourceNotFound for a live user, an unknown id and a purged user."""
    nina = tenant.state.user(NINA).id
    path = f"/directory/deletedItems/{nina}"
    for missing in (path, f"/directory/deletedItems/{GROUP}"):
        answer = await http.get(missing)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "Request_ResourceNotFound")
    await graph.users.by_user_id(NINA).delete()
    selected = {"$select": "id,userPrincipalName"}
    found = (await http.get(f"/directory/deletedItems/{nina.upper()}", params=selected)).json()
    assert found == {
        "@odata.context": f"{tenant.base_url}/$metadata#directoryObjects/$entity",
        "@odata.type": "#microsoft.graph.user",
        "id": nina,
        "userPrincipalName": NINA,
    }
    sdk = await graph.directory.deleted_items.by_directory_object_id(nina).get()
    assert isinstance(sdk, GraphUser)
    assert (sdk.id, sdk.user_principal_name) == (nina, NINA)
    tenant.state.delete_user(nina, permanent=True)
    purged = await http.get(path)
    assert (purged.status_code, purged.json()["error"]["code"]) == (404, "Request_ResourceNotFound")
    assert tenant.state.requests["GET /directory/deletedItems/{id}"] == 5


async def test_the_apps_own_writes_notify_updated_when_they_change_the_user(
    graph: GraphServiceClient,
    http: httpx.AsyncClient,
    tenant: EmulatedTenant,
    receiver: Receiver,
    clock: FakeClock,
) -> None:
    """assignLicense and PATCH by the app notify updated; an assignLicense that changes nothing does not."""
    await subscribe(http, receiver, clock)
    aisha = tenant.state.user(AISHA).id
    await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMS: [INTUNE_A]}))
    assert await notifications(tenant, receiver) == [("updated", aisha)]
    await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMS: [INTUNE_A]}))
    assert await notifications(tenant, receiver) == []
    await graph.users.by_user_id(AISHA).patch(GraphUser(job_title="Licensing Lead"))
    assert await notifications(tenant, receiver) == [("updated", aisha)]


# --- 8. $batch order ----------------------------------------------------------------------------------


async def test_batch_answers_come_back_shuffled_by_a_seed(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """$batch answers arrive out of request order, each matched by id, in the same order for the same seed."""
    requests = [{"id": str(n), "method": "GET", "url": f"/users/{u}"} for n, u in enumerate((AISHA, NINA, TOM, LIAM))]

    async def order() -> list[str]:
        response = await http.post("/$batch", json={"requests": requests})
        answers = response.json()["responses"]
        by_id = {a["id"]: a["body"]["userPrincipalName"] for a in answers}
        assert by_id == {"0": AISHA, "1": NINA, "2": TOM, "3": LIAM}
        return [a["id"] for a in answers]

    first = await order()
    assert first != ["0", "1", "2", "3"]
    tenant.state.strictness.update({"batch_seed": 0})  # reseeds
    assert await order() == first


# --- 9. warning seats ---------------------------------------------------------------------------------


async def test_warning_units_are_assignable(graph: GraphServiceClient, tenant: EmulatedTenant) -> None:
    """A SKU with no enabled seat left but one in warning (grace period) can still be assigned."""
    tenant.state.skus[EMSPREMIUM].warning = 1
    assert tenant.state.free_units(EMSPREMIUM) == 1
    await graph.users.by_user_id(VICTORIA).assign_license.post(licenses({EMSPREMIUM: []}))
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id(AISHA).assign_license.post(licenses({EMSPREMIUM: []}))
    assert caught.value.error.message == f"Subscription {EMSPREMIUM} does not have any available licenses."


# --- 10. Intune managed devices -----------------------------------------------------------------------


async def test_managed_devices_page_through_next_link_with_select(
    graph: GraphServiceClient, tenant: EmulatedTenant
) -> None:
    """managedDevices pages by 100 (SDK follows @odata.nextLink) and $select narrows each device."""
    tenant.state.add_devices(AISHA, 150)
    tenant.state.add_devices(NINA, 3)
    query = ManagedDevicesRequestBuilder.ManagedDevicesRequestBuilderGetQueryParameters(
        select=["id", "userId", "deviceName", "operatingSystem"]
    )
    devices = graph.device_management.managed_devices
    page = await devices.get(RequestConfiguration(query_parameters=query))
    pages = [page]
    while page.odata_next_link:
        page = await devices.with_url(page.odata_next_link).get()
        pages.append(page)
    assert [len(p.value) for p in pages] == [100, 53]
    found = [d for p in pages for d in p.value]
    assert sum(1 for d in found if d.user_id == tenant.state.user(NINA).id) == 3
    assert all(d.device_name and d.operating_system for d in found)
    assert found[0].enrolled_date_time is None  # not selected


async def test_managed_devices_top_is_honoured_up_to_a_thousand(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """$top sets the page size, capped at 1000."""
    tenant.state.add_devices(AISHA, 1005)
    small = (await http.get("/deviceManagement/managedDevices", params={"$top": "7"})).json()
    assert len(small["value"]) == 7
    large = (await http.get("/deviceManagement/managedDevices", params={"$top": "5000"})).json()
    assert len(large["value"]) == 1000
    rest = (await http.get(large["@odata.nextLink"])).json()
    assert (len(rest["value"]), "@odata.nextLink" in rest) == (5, False)


@pytest.mark.parametrize("switch", ["faults", "strictness"])
async def test_managed_devices_can_be_forbidden(graph: GraphServiceClient, tenant: EmulatedTenant, switch: str) -> None:
    """devices_forbidden (a fault or a strictness switch) answers 403 Authorization_RequestDenied."""
    (tenant.faults if switch == "faults" else tenant.state.strictness).devices_forbidden = True
    with pytest.raises(ODataError) as caught:
        await graph.device_management.managed_devices.get()
    assert (caught.value.response_status_code, caught.value.error.code) == (403, "Authorization_RequestDenied")


# --- 11. mutually exclusive plans ---------------------------------------------------------------------


def add_exchange_skus(state: TenantState) -> None:
    """Exchange Online Plan 1 and Plan 2 (real ids), ten seats each."""
    for sku_id, part, plan_id, plan in (
        (EXCHANGE_STANDARD_SKU, "EXCHANGESTANDARD", EXCHANGE_S_STANDARD, "EXCHANGE_S_STANDARD"),
        (EXCHANGE_ENTERPRISE_SKU, "EXCHANGEENTERPRISE", EXCHANGE_S_ENTERPRISE, "EXCHANGE_S_ENTERPRISE"),
    ):
        state.add_sku(Sku(sku_id, part, [ServicePlan(plan_id, plan, service="exchange")], enabled=10))


async def test_mutually_exclusive_plans_are_refused_unless_one_is_disabled(
    graph: GraphServiceClient, tenant: EmulatedTenant
) -> None:
    """Adding a SKU whose enabled plan clashes with one the user holds is a 400; disabling it is accepted."""
    add_exchange_skus(tenant.state)
    user = graph.users.by_user_id(AISHA)
    await user.assign_license.post(licenses({EXCHANGE_STANDARD_SKU: []}))
    with pytest.raises(ODataError) as caught:
        await user.assign_license.post(licenses({EXCHANGE_ENTERPRISE_SKU: []}))
    assert (caught.value.response_status_code, caught.value.error.message) == (
        400,
        f"License assignment failed because service plans {EXCHANGE_S_ENTERPRISE}, {EXCHANGE_S_STANDARD} "
        "are mutually exclusive.",
    )
    await user.assign_license.post(licenses({EXCHANGE_ENTERPRISE_SKU: [EXCHANGE_S_ENTERPRISE]}))
    held = await user.get(select("assignedLicenses"))
    assert len(held.assigned_licenses) == 2


# --- 12. UPNs starting with $ -------------------------------------------------------------------------


async def test_dollar_upn_is_addressed_in_quotes_and_refused_after_a_slash(
    graph: GraphServiceClient, http: httpx.AsyncClient, tenant: EmulatedTenant, clock: FakeClock
) -> None:
    """/users('$adm@...') reaches the user on every user route; /users/$adm@... is a 400."""
    tenant.state.add_user(ADMIN, "Admin", usage_location="US")
    allow_license_details(tenant)
    quoted = f"/users('{ADMIN}')"
    assert (await http.get(quoted)).json()["userPrincipalName"] == ADMIN
    assert (await http.patch(quoted, json={"department": "IT"})).status_code == 204
    assign = {"addLicenses": [{"skuId": EMS, "disabledPlans": []}], "removeLicenses": []}
    assert (await http.post(f"{quoted}/assignLicense", json=assign)).status_code == 200
    details = (await http.get(f"{quoted}/licenseDetails")).json()
    assert [d["skuId"] for d in details["value"]] == [EMS]
    batch = {"requests": [{"id": "1", "method": "GET", "url": f"{quoted}?$select=department"}]}
    [answer] = (await http.post("/$batch", json=batch)).json()["responses"]
    assert answer["body"]["department"] == "IT"
    sdk_user = await UserItemRequestBuilder(graph.request_adapter, f"{tenant.base_url}{quoted}").get()
    assert sdk_user.user_principal_name == ADMIN
    slashed = await http.get(f"/users/{ADMIN}")
    assert (slashed.status_code, slashed.json()["error"]["code"]) == (400, "BadRequest")
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id(ADMIN).assign_license.post(licenses({EMS: []}))
    assert caught.value.response_status_code == 400


# --- the profile: admin API, lenient default, command line --------------------------------------------


async def test_strictness_is_switched_at_runtime_over_the_admin_api(
    admin: httpx.AsyncClient, graph: GraphServiceClient
) -> None:
    """POST /_emulator/strictness sets fields (all or none) and answers the profile now in force."""
    answer = await admin.post("/_emulator/strictness", json={"license_details_app_only_refused": False})
    assert answer.json()["license_details_app_only_refused"] is False
    assert ["EXCHANGE_S_ENTERPRISE", "EXCHANGE_S_STANDARD"] in answer.json()["mutually_exclusive"]
    assert (await plan_statuses(graph, NINA))["INTUNE_A"] == "Disabled"
    refused = await admin.post("/_emulator/strictness", json={"shuffle_batch": False, "settling_status": "Soon"})
    assert refused.status_code == 400
    stats = (await admin.get("/_emulator/stats")).json()
    assert stats["strictness"]["shuffle_batch"] is True
    pairs = {"mutually_exclusive": [["INTUNE_A", "INTUNE_EDU"]]}
    assert (await admin.post("/_emulator/strictness", json=pairs)).json()["mutually_exclusive"] == [
        ["INTUNE_A", "INTUNE_EDU"]
    ]


async def test_lenient_profile_keeps_the_old_behaviour(clock: FakeClock, receiver: Receiver) -> None:
    """Strictness.lenient() gives the emulator's old, kinder answers to every strict behaviour."""
    state = TenantState.default(clock=clock, provisioning_delay=DELAY, strictness=Strictness.lenient())
    add_exchange_skus(state)
    state.skus[EMSPREMIUM].warning = 1
    state.add_user(ADMIN, "Admin", usage_location="US")
    async with EmulatedTenant(state) as tenant, httpx.AsyncClient(base_url=tenant.base_url) as http:
        await subscribe(http, receiver, clock)
        assert (await http.patch(f"/users/{LIAM}", json={"usageLocation": "IE"})).status_code == 204
        assign = {"addLicenses": [{"skuId": EMS, "disabledPlans": []}], "removeLicenses": []}
        assert (await http.post(f"/users/{LIAM}/assignLicense", json=assign)).status_code == 200  # no lag
        details = (await http.get(f"/users/{LIAM}/licenseDetails")).json()["value"]
        statuses = {p["servicePlanName"]: p["provisioningStatus"] for p in details[0]["servicePlans"]}
        assert statuses["AAD_PREMIUM"] == "PendingProvisioning"
        premium = {"addLicenses": [{"skuId": EMSPREMIUM, "disabledPlans": []}], "removeLicenses": []}
        assert (await http.post(f"/users/{VICTORIA}/assignLicense", json=premium)).status_code == 400  # warning
        for sku in (EXCHANGE_STANDARD_SKU, EXCHANGE_ENTERPRISE_SKU):
            both = {"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []}
            assert (await http.post(f"/users/{AISHA}/assignLicense", json=both)).status_code == 200
        assert (await http.get(f"/users/{ADMIN}")).status_code == 200
        requests = [{"id": str(n), "method": "GET", "url": "/subscribedSkus"} for n in range(5)]
        answers = (await http.post("/$batch", json={"requests": requests})).json()["responses"]
        assert [a["id"] for a in answers] == ["0", "1", "2", "3", "4"]
        link = (await http.get("/users/delta", params={"$deltatoken": "latest"})).json()["@odata.deltaLink"]
        state.expire_delta_tokens()
        assert (await http.get(link)).json()["error"]["code"] == "syncStateNotFound"
        assert await notifications(tenant, receiver) == []  # neither the PATCH nor assignLicense notified
        state.delete_user(NINA)
        assert await notifications(tenant, receiver) == []  # no auto_notify: no word of the delete either


def test_strict_is_the_default_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """STRICT_BY_DEFAULT ships True (every test meets Graph as documented); switched off, tenants are lenient."""
    assert strict.STRICT_BY_DEFAULT is True
    assert TenantState().strictness == TenantState.default().strictness == Strictness()
    monkeypatch.setattr(strict, "STRICT_BY_DEFAULT", False)
    assert TenantState().strictness == TenantState.default().strictness == Strictness.lenient()
    assert TenantState(strictness=Strictness.lenient()).strictness == Strictness.lenient()


def test_command_line_chooses_the_profile() -> None:
    """--strict and --lenient pick the profile; without either STRICT_BY_DEFAULT decides; both is an error."""
    assert cli.strictness_from(cli.parse_args(["--strict"])) == Strictness()
    assert cli.strictness_from(cli.parse_args(["--lenient"])) == Strictness.lenient()
    assert cli.parse_args([]).strict is strict.STRICT_BY_DEFAULT
    with pytest.raises(SystemExit):
        cli.parse_args(["--strict", "--lenient"])


def test_standalone_strict_tenant_refuses_license_details() -> None:
    """python -m licensing.dev.tenant --strict serves the strict profile (licenseDetails 403)."""
    with standalone_tenant("--strict") as base_url:
        users = httpx.get(f"{base_url}/users", params={"$top": "1"}, timeout=5).json()["value"]
        response = httpx.get(f"{base_url}/users/{users[0]['id']}/licenseDetails", timeout=5)
        assert response.status_code == 403
