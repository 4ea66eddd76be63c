"""Nothing stale: checks tied to the assignment they check, a fenced per-user lease, HR order decided by issuedAt,
and a blocked request requeued as it was. Registered queue functions against Azurite and the emulated tenant."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from licensing.adapters.storage import leases
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from tests.helpers import ASSIGN, EMS, INTUNE_A, RMS_S_PREMIUM, drain, hire, invoke, statuses

INTUNE_EDU = "d9d89b70-a645-4c24-b041-8d3cb1884ec7"
INTUNE_A_D = "2b317a4a-77a6-4188-9437-b68a77b4e2c6"
EPOCH = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def hr(user: str, minute: int, kind: str = "hire", **attributes: str) -> dict[str, Any]:
    """An HR request as the webhook enqueues it, issued ``minute`` minutes after EPOCH."""
    body: dict[str, Any] = {
        "user": user,
        "source": "hr",
        "requestId": f"hr-{kind}-{minute}-{uuid.uuid4().hex[:6]}",
        "issuedAt": (EPOCH + timedelta(minutes=minute)).isoformat(),
    }
    if kind == "terminate":
        body["action"] = "remove"
    else:
        body["attributes"] = attributes or {"department": "Sales"}
    return body


async def settle(services: Services) -> None:
    """Deliver every queued request and check (deferrals included) until both queues are empty."""
    for _ in range(20):
        requests = await drain(services, LICENSE_REQUESTS_QUEUE, wait_seconds=10)
        checks = await drain(services, LICENSE_VERIFY_QUEUE, wait_seconds=10)
        if not requests and not checks:
            return
        for body in requests:
            await invoke("onboard", body)
        for body in checks:
            await invoke("verify", body)
    raise AssertionError("the queues did not empty after 20 rounds")


def held(tenant: EmulatedTenant, user_id: str) -> dict[str, list[str]]:
    """The user's direct licenses: SKU id -> disabled plan ids."""
    return {a.sku_id: sorted(a.disabled_plans) for a in tenant.state.user(user_id).assignments}


async def test_a_check_sent_before_a_leavers_removal_leaves_the_row_removed(
    services: Services, tenant: EmulatedTenant
) -> None:
    """hire -> check queued -> terminate removes EMS -> the old check records nothing but "stale check ... ignored"."""
    user = hire(tenant, "gone")
    hire_request = hr(user.user_principal_name, 0)
    await invoke("onboard", hire_request)
    [old_check] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("onboard", hr(user.user_principal_name, 1, "terminate"))
    await invoke("verify", old_check)
    rows = await statuses(services, user.id)
    assert rows["EMS"].outcome == "removed"
    [ignored] = [e for e in await services.storage.events(user.id) if e.kind == "CheckIgnored"]
    assert f"stale check of request {hire_request['requestId']} ignored" in ignored.detail
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []  # the chain stopped


async def test_a_check_of_a_movers_old_plan_set_keeps_the_new_disabled_set(
    services: Services, tenant: EmulatedTenant
) -> None:
    """Sales -> Contractor changes EMS's disabled plans; the Sales check, delivered late, neither fails nor reverts."""
    user = hire(tenant, "shifter")
    await invoke("onboard", hr(user.user_principal_name, 0, department="Sales"))
    [old_check] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("onboard", hr(user.user_principal_name, 1, employeeType="Contractor"))
    [new_check] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", old_check)
    row = (await statuses(services, user.id))["EMS"]
    assert (row.outcome, row.disabled_plans) == ("assigned", ("INTUNE_A", "RMS_S_PREMIUM"))
    await invoke("verify", new_check)
    row = (await statuses(services, user.id))["EMS"]
    assert (row.outcome, row.disabled_plans) == ("verified", ("INTUNE_A", "RMS_S_PREMIUM"))
    assert held(tenant, user.id) == {EMS: sorted([INTUNE_A, RMS_S_PREMIUM])}


async def _steal_lease(services: Services, user_id: str) -> None:
    """Another worker takes the user's lease: ours looks expired on its clock (we stalled past it)."""
    later = services.clock() + leases.LEASE + timedelta(seconds=1)
    assert await leases.take(services.storage, user_id, holder="other-worker", now=later) is not None


async def test_a_worker_that_lost_its_lease_before_the_write_does_not_write(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planned, then stalled past the lease (another worker took it): no assignLicense, no row, the request returns."""
    user = hire(tenant, "stalled")
    real_permit = services.budget.permit

    async def stall_then_permit() -> None:  # the budget is taken right before the write: the stall lands here
        await _steal_lease(services, user.id)
        await real_permit()

    monkeypatch.setattr(services.budget, "permit", stall_then_permit)
    body = hr(user.user_principal_name, 0)
    await invoke("onboard", body)
    assert tenant.state.requests[ASSIGN] == 0
    assert "EMS" not in await statuses(services, user.id)
    [again] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert again["requestId"] == body["requestId"]
    monkeypatch.setattr(services.budget, "permit", real_permit)
    await services.storage.table("UserLeases").delete_entity(user.id, "lease")  # the other worker finished
    await invoke("onboard", again)
    assert held(tenant, user.id) == {EMS: [INTUNE_A]}


async def test_a_worker_that_lost_its_lease_during_the_write_records_nothing_and_comes_back(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease was taken while assignLicense was in flight: no "assigned" row, no check; the retry records it."""
    user = hire(tenant, "inflight")
    real_assign = services.graph.assign

    async def slow_assign(*args: Any, **kwargs: Any) -> None:
        await real_assign(*args, **kwargs)
        await _steal_lease(services, user.id)

    monkeypatch.setattr(services.graph, "assign", slow_assign)
    await invoke("onboard", hr(user.user_principal_name, 0))
    assert "EMS" not in await statuses(services, user.id)
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []
    [again] = await drain(services, LICENSE_REQUESTS_QUEUE)
    monkeypatch.setattr(services.graph, "assign", real_assign)
    await services.storage.table("UserLeases").delete_entity(user.id, "lease")
    await invoke("onboard", again)
    await settle(services)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"
    assert tenant.state.requests[ASSIGN] == 1


async def test_a_rehire_issued_after_the_terminate_is_licensed_though_the_removal_ran_later(
    services: Services, tenant: EmulatedTenant
) -> None:
    """terminate issued T1 runs now; the rehire HR issued at T2 (T1 < T2 < now) passes the tombstone dated T1."""
    user = hire(tenant, "boomerang2")
    await invoke("onboard", hr(user.user_principal_name, 0))
    await invoke("onboard", hr(user.user_principal_name, 10, "terminate"))
    assert held(tenant, user.id) == {}
    tomb = (await statuses(services, user.id))["~leaver"]
    assert tomb.updated_at == EPOCH + timedelta(minutes=10)
    await invoke("onboard", hr(user.user_principal_name, 20))
    assert held(tenant, user.id) == {EMS: [INTUNE_A]}
    assert "~leaver" not in await statuses(services, user.id)


async def test_a_terminate_issued_before_a_hire_but_delivered_after_it_keeps_the_licenses(
    services: Services, tenant: EmulatedTenant
) -> None:
    """hire T2 applied, then the terminate issued T1 < T2 arrives: skipped, with an event naming both times."""
    user = hire(tenant, "latecomer")
    hire_request = hr(user.user_principal_name, 20)
    await invoke("onboard", hire_request)
    late = hr(user.user_principal_name, 10, "terminate")
    await invoke("onboard", late)
    assert held(tenant, user.id) == {EMS: [INTUNE_A]}
    assert "~leaver" not in await statuses(services, user.id)
    [skipped] = [e for e in await services.storage.events(user.id) if e.kind == "RequestSuperseded"]
    assert skipped.request_id == late["requestId"]
    assert late["issuedAt"] in skipped.detail
    assert hire_request["requestId"] in skipped.detail
    assert hire_request["issuedAt"] in skipped.detail


async def test_an_update_issued_after_the_terminate_took_effect_does_not_relicense_the_leaver(
    services: Services, tenant: EmulatedTenant
) -> None:
    """terminate T10 applied; an HR update issued T20 is no hire: the leaver keeps no license, the tombstone stays."""
    user = hire(tenant, "goneupdated")
    await invoke("onboard", {**hr(user.user_principal_name, 0), "hrEvent": "hire"})
    await invoke("onboard", {**hr(user.user_principal_name, 10, "terminate"), "hrEvent": "terminate"})
    update = {**hr(user.user_principal_name, 20, employeeType="Contractor"), "hrEvent": "update"}
    await invoke("onboard", update)
    assert held(tenant, user.id) == {}
    assert "~leaver" in await statuses(services, user.id)
    [refused] = [e for e in await services.storage.events(user.id) if e.request_id == update["requestId"]]
    assert (refused.kind, "only a later HR hire" in refused.detail) == ("RequestRejected", True)


async def test_a_hire_issued_after_a_scheduled_terminate_withdraws_it(
    services: Services, tenant: EmulatedTenant
) -> None:
    """terminate T10 waits for its end date; a hire T20 (and an update T30) are applied; the terminate is skipped."""
    user = hire(tenant, "stays")
    upn = user.user_principal_name
    terminate = {**hr(upn, 10, "terminate"), "hrEvent": "terminate"}
    await invoke("onboard", {**hr(upn, 20), "hrEvent": "hire"})
    await invoke("onboard", {**hr(upn, 30, employeeType="Contractor"), "hrEvent": "update"})
    await invoke("onboard", terminate)
    assert held(tenant, user.id) == {EMS: sorted([INTUNE_A, RMS_S_PREMIUM])}
    [skipped] = [e for e in await services.storage.events(user.id) if e.kind == "RequestSuperseded"]
    assert skipped.request_id == terminate["requestId"]


EVENTS = ("hire", "move", "terminate", "rehire")


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(4)))[::5], ids=lambda o: "-".join(EVENTS[i] for i in o)
)
async def test_shuffled_hr_events_end_as_the_latest_issued_one_says(
    services: Services, tenant: EmulatedTenant, order: tuple[int, ...]
) -> None:
    """hire T1, move T2, terminate T3, rehire T4 delivered in any order: the user ends with the rehire's licenses."""
    user = hire(tenant, f"shuffled{''.join(map(str, order))}")
    upn = user.user_principal_name
    events = [
        hr(upn, 1, department="Sales"),
        hr(upn, 2, employeeType="Contractor"),
        hr(upn, 3, "terminate"),
        hr(upn, 4, department="Teachers", companyName="Contoso School"),
    ]
    for index in order:
        await invoke("onboard", events[index])
        await settle(services)
    assert held(tenant, user.id) == {INTUNE_EDU: [], INTUNE_A_D: []}
    rows = await statuses(services, user.id)
    assert (rows["INTUNE_EDU"].outcome, rows["INTUNE_A_D"].outcome) == ("verified", "verified")
    assert "~leaver" not in rows


async def test_a_blocked_hr_hire_gets_its_rules_sku_when_a_seat_frees(
    services: Services, tenant: EmulatedTenant
) -> None:
    """HR says Executive (the directory says Sales): blocked on EMSPREMIUM; a leaver's seat goes to that request."""
    premium = next(s for s in tenant.state.skus.values() if s.part_number == "EMSPREMIUM")
    premium.enabled += 1  # exactly one free seat
    first = hire(tenant, "chief", department="Executive")
    second = hire(tenant, "deputy", location=None)  # the directory knows nothing of the promotion
    await invoke("onboard", hr(first.user_principal_name, 0, department="Executive"))
    blocked_hire = {**hr(second.user_principal_name, 1, department="Executive"), "usageLocation": "FR"}
    await invoke("onboard", blocked_hire)
    row = (await statuses(services, second.id))["EMSPREMIUM"]
    assert row.outcome == "blocked"
    await drain(services, LICENSE_REQUESTS_QUEUE)  # its backoff retry: the queue holds it for later
    await invoke("onboard", hr(first.user_principal_name, 2, "terminate"))
    [requeued] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert requeued["requestId"].startswith(f"{blocked_hire['requestId']}+unblock-")
    assert (requeued["attributes"], requeued["usageLocation"]) == ({"department": "Executive"}, "FR")
    issued = datetime.fromisoformat(requeued["issuedAt"])
    assert (issued, requeued["attempt"]) == (datetime.fromisoformat(blocked_hire["issuedAt"]), 0)
    await invoke("onboard", requeued)
    await settle(services)  # the strict tenant lags a just-set usage location for a moment
    assert held(tenant, second.id) == {premium.id: [INTUNE_A]}
    assert tenant.state.user(second.id).usage_location == "FR"
