"""Nothing lost (#12): a Graph notification read, not guessed from our rows; a new user's 404 retried; the lag of a
usage location we set recognised on a redelivery. Registered queue functions, real msgraph-sdk, strict emulated
tenant, real Azurite."""

from __future__ import annotations

import pytest

from licensing.adapters.graph.gateway import GraphGateway
from licensing.core.errors import TransientError
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.strict import Strictness
from licensing.services import onboard_outcomes
from licensing.services.context import Services
from tests.e2e.test_ordering import held, settle
from tests.helpers import EMS, INTUNE_A, drain, hire, invoke, request, statuses

NEW_ID = "0b7e8f2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
EMSPREMIUM = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"
DELETED_ITEM = "GET /directory/deletedItems/{id}"


@pytest.fixture(autouse=True)
def strict(tenant: EmulatedTenant) -> Strictness:
    """Graph as documented: new plans PendingInput, usage-location lag, own writes notified back."""
    tenant.state.strictness = Strictness()
    return tenant.state.strictness


def seat_for_executives(tenant: EmulatedTenant) -> None:
    """One free EMSPREMIUM seat (the default tenant has none spare)."""
    next(s for s in tenant.state.skus.values() if s.part_number == "EMSPREMIUM").enabled += 1


async def test_a_real_change_minutes_after_our_assignment_is_acted_on(
    services: Services, tenant: EmulatedTenant
) -> None:
    """Licensed EMS, moved to Executive a minute later: the notification re-plans at once (EMSPREMIUM, EMS gone)."""
    seat_for_executives(tenant)
    user = hire(tenant, "mover")
    await invoke("onboard", request(user.user_principal_name))
    assert (await statuses(services, user.id))["EMS"].outcome == "assigned"
    tenant.state.set_user(user.id, {"department": "Executive"})  # a provisioning tool finishing the account
    await invoke("onboard", {"user": user.id, "source": "graph", "requestId": "graph-mover"})
    assert held(tenant, user.id) == {EMSPREMIUM: [INTUNE_A]}
    rows = await statuses(services, user.id)
    assert (rows["EMSPREMIUM"].outcome, rows["EMS"].outcome) == ("assigned", "removed")


async def test_a_change_while_a_check_keeps_rewriting_the_pending_row_is_acted_on(
    services: Services, tenant: EmulatedTenant
) -> None:
    """Hours of PendingInput re-checks (each rewrites the row) do not hide a later move from its notification."""
    tenant.state.provisioning_delay = 24 * 3600
    seat_for_executives(tenant)
    user = hire(tenant, "slow")
    await invoke("onboard", request(user.user_principal_name))
    [check] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", check)  # the row is "pending", written just now
    assert (await statuses(services, user.id))["EMS"].outcome == "pending"
    tenant.state.set_user(user.id, {"department": "Executive"})
    await invoke("onboard", {"user": user.id, "source": "graph", "requestId": "graph-slow"})
    assert held(tenant, user.id) == {EMSPREMIUM: [INTUNE_A]}


async def test_a_notification_for_a_user_not_readable_yet_is_retried_until_it_is(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A new user's notification can beat replication: the 404 (not in deleted items either) is retried (an event,
    no row), then licensed."""
    await invoke("onboard", {"user": NEW_ID, "source": "graph", "requestId": "graph-new"})
    assert tenant.state.requests[DELETED_ITEM] == 1  # not a soft-deleted user: retried
    assert await statuses(services, NEW_ID) == {}
    [deferred] = await services.storage.events(NEW_ID)
    assert (deferred.kind, deferred.request_id) == ("RequestDeferred", "graph-new")
    [retry] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert (retry["user"], retry["attempt"]) == (NEW_ID, 1)
    tenant.state.add_user("newcomer@contoso.onmicrosoft.com", "Newcomer", id=NEW_ID, usage_location="US")
    await invoke("onboard", retry)
    assert held(tenant, NEW_ID) == {EMS: [INTUNE_A]}
    assert (await statuses(services, NEW_ID))["EMS"].outcome == "assigned"


async def test_a_notified_user_never_readable_nor_deleted_is_one_audit_event_after_the_retries(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A notified id Graph never returns and deleted items do not hold is retried like a new user's (one deletedItems
    read per try), then one audit event says so; no row, nothing sent again."""
    await invoke("onboard", {"user": NEW_ID, "source": "graph", "requestId": "graph-ghost"})
    [retry] = await drain(services, LICENSE_REQUESTS_QUEUE)
    await invoke("onboard", retry)  # LICENSING_NOT_FOUND_MAX_ATTEMPTS is 2 in tests: the last try
    assert await statuses(services, NEW_ID) == {}
    gone, deferred = await services.storage.events(NEW_ID)
    assert (deferred.kind, gone.kind) == ("RequestDeferred", "RequestRejected")
    assert "not returned in 2 reads, nor in deleted items: deleted for good, or never created" in gone.detail
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []
    assert tenant.state.requests[DELETED_ITEM] == 2


async def test_lag_of_our_own_location_on_a_redelivery_is_waited_out(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH done, assignLicense throttled (the queue redelivers): the redelivery's "invalid usage location" is the
    lag of our PATCH, so it waits and ends verified instead of failing."""
    monkeypatch.setattr(onboard_outcomes, "LOCATION_LAG_SECONDS", 0)
    tenant.state.strictness.usage_location_lag = 3600
    user = hire(tenant, "redelivered", location=None)
    patch = GraphGateway.set_usage_location

    async def then_throttle(gateway: GraphGateway, user_id: str, location: str) -> None:
        await patch(gateway, user_id, location)
        tenant.faults.throttle_next, tenant.faults.retry_after = 1, 20  # above the SDK's cap: the write fails

    monkeypatch.setattr(GraphGateway, "set_usage_location", then_throttle)
    await invoke("onboard", request(user.user_principal_name))  # the throttled write is sent again, not raised
    [again] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert again["writeRetries"] == 1
    await invoke("onboard", again)
    assert "-" not in await statuses(services, user.id)
    assert (await services.storage.events(user.id))[0].kind == "RequestDeferred"
    tenant.state.strictness.usage_location_lag = 0  # replicated
    await settle(services)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"
    assert tenant.state.requests["PATCH /users/{id}"] == 1


def throttle_the_next_assign(tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graph answers the next assignLicense 429 with a Retry-After above the SDK's cap (reads stay untouched)."""
    assign = GraphGateway.assign

    async def throttled(gateway: GraphGateway, *args: object, **kwargs: object) -> None:
        tenant.faults.throttle_next, tenant.faults.retry_after = 1, 20
        await assign(gateway, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(GraphGateway, "assign", throttled)


async def test_a_throttled_write_is_sent_again_without_using_up_the_queues_deliveries(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assignLicense answered 429: the delivery completes, the request comes back (writeRetries 1) and licenses."""
    user = hire(tenant, "throttledwrite")
    throttle_the_next_assign(tenant, monkeypatch)
    await invoke("onboard", request(user.user_principal_name))  # raises nothing: no delivery is used up
    assert (await services.storage.events(user.id))[0].kind == "RequestDeferred"
    [again] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert again["writeRetries"] == 1
    monkeypatch.undo()
    await invoke("onboard", again)
    await settle(services)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"
    assert tenant.state.requests["POST /users/{id}/assignLicense"] == 2  # the refused one and the one that went in


async def test_a_write_throttled_past_the_app_retries_falls_back_to_the_queue(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After WRITE_RETRIES re-sends the throttled write raises, so the queue's deliveries and poison handler decide."""
    user = hire(tenant, "throttledlast")
    throttle_the_next_assign(tenant, monkeypatch)
    with pytest.raises(TransientError):
        await invoke("onboard", {**request(user.user_principal_name), "writeRetries": 8})
    assert await drain(services, LICENSE_REQUESTS_QUEUE, wait_seconds=0) == []


async def test_a_license_whose_row_was_never_written_is_still_the_apps_for_the_next_request(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assignLicense went in but storage failed before the row: a mover's request arriving before the redelivery
    still removes that SKU (the intent event says it is the app's), instead of leaving the user two licenses."""
    user = hire(tenant, "rowless")
    put_status = services.storage.put_status

    async def fails_once(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(services.storage, "put_status", put_status)
        raise TransientError("storage failed to write status: ServiceRequestError")

    monkeypatch.setattr(services.storage, "put_status", fails_once)
    with pytest.raises(TransientError):
        await invoke("onboard", request(user.user_principal_name))
    assert [a.sku_id for a in user.assignments] == [EMS]  # Graph has it, our table does not
    tenant.state.set_user(user.id, {"department": "Teachers", "companyName": "Contoso School"})
    await invoke("onboard", request(user.user_principal_name))  # the mover's request, before any redelivery
    assert EMS not in {a.sku_id for a in user.assignments}
