"""The queue functions against an emulated tenant as strict as Microsoft's docs (issue #11): app-only plan states,
admin-pending plans, group licenses in error, usage-location replication lag, soft-deleted users and the echo of
our own writes, `$` UPNs. Real msgraph-sdk, real Azurite, functions called as the worker calls them."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import function_app
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.dev.localhttp import LocalHttp
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.model import ServicePlan, User
from licensing.dev.tenant.strict import Strictness
from licensing.services import onboard_outcomes
from licensing.services.context import Services
from tests.helpers import ASSIGN, drain, hire, invoke, request, statuses

REPO = Path(__file__).resolve().parents[2]
GROUP = "7d3c1a52-9b0e-4f61-8c2d-3e4f5a6b7c8d"
GET_USER = "GET /users/{id}"
DELETED_ITEM = "GET /directory/deletedItems/{id}"


@pytest.fixture(autouse=True)
def strict(tenant: EmulatedTenant) -> Strictness:
    """Every test here runs against Graph as documented (licenseDetails refused to the app, PendingInput, ...)."""
    tenant.state.strictness = Strictness()
    return tenant.state.strictness


async def onboard_and_verify(services: Services, tenant: EmulatedTenant, name: str) -> User:
    """Hire, onboard and run the first check; returns the user."""
    user = hire(tenant, name)
    await invoke("onboard", request(user.user_principal_name))
    [check] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", check)
    return user


async def test_app_only_verification_waits_for_pending_input_then_verifies_naming_its_source(
    services: Services, tenant: EmulatedTenant
) -> None:
    """licenseDetails is refused: plans read from assignedPlans+provisionedPlans stay pending until provisioned."""
    tenant.state.provisioning_delay = 3600
    user = await onboard_and_verify(services, tenant, "apponly")
    pending = (await statuses(services, user.id))["EMS"]
    assert pending.outcome == "pending"
    assert pending.plan_source == "assignedPlans+provisionedPlans"
    assert pending.plan_statuses["AAD_PREMIUM"] == "PendingInput"
    assert "(plan states from assignedPlans+provisionedPlans)" in pending.reason
    [again] = await drain(services, LICENSE_VERIFY_QUEUE)
    tenant.state.provisioning_delay = 0
    await invoke("verify", again)
    done = (await statuses(services, user.id))["EMS"]
    assert (done.outcome, done.plan_source) == ("verified", "assignedPlans+provisionedPlans")
    assert tenant.state.requests["GET /users/{id}/licenseDetails"] == 2  # asked, refused, read the user instead


async def test_pending_activation_is_action_required_at_once_and_not_rechecked(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A service waiting for an admin: action-required with the fix, an AdminActionRequired event, no 24 h re-check."""
    tenant.state.require_activation("AAD_PREMIUM")
    user = await onboard_and_verify(services, tenant, "activate")
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "action-required"
    assert (
        "AAD_PREMIUM is PendingActivation: an admin must activate the service in the Microsoft 365 admin center, "
        f"then run `licensing verify {user.user_principal_name}`" in row.reason
    )
    assert (await services.storage.events(user.id))[0].kind == "AdminActionRequired"
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []
    tenant.state.activate("AAD_PREMIUM")  # the admin acts, then requeues the user (`requeue --outcome action-required`)
    await invoke("onboard", request(user.user_principal_name))
    [check] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", check)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"
    assert tenant.state.requests[ASSIGN] == 1


async def test_plan_microsoft_added_to_the_sku_is_action_required_naming_both_fixes(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A plan added to EMS later shows PendingProvisioning: activate it, or disable it in the rule / reviewedPlans."""
    tenant.state.add_plan_to_sku("EMS", ServicePlan("0a1b2c3d-0000-4000-8000-00000000c0de", "NEW_PLAN", service="X"))
    user = await onboard_and_verify(services, tenant, "added")
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "action-required"
    assert row.plan_statuses["NEW_PLAN"] == "PendingProvisioning"
    assert "NEW_PLAN is PendingProvisioning: a plan Microsoft added to the SKU is not activated" in row.reason
    assert "disabledPlans (and list it in reviewedPlans)" in row.reason
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []


async def test_group_license_in_error_is_action_required_not_held_via_the_group(
    services: Services, tenant: EmulatedTenant
) -> None:
    """EMS only through a group in error (CountViolation): recorded action-required with the code; nothing assigned."""
    user = hire(tenant, "grouped")
    tenant.state.add_group_license(user.id, "EMS", GROUP, state="Error", error="CountViolation")
    await invoke("onboard", request(user.user_principal_name))
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "action-required"
    assert row.reason.startswith(f"EMS via group {GROUP} is in error (CountViolation, state Error)")
    kinds = [e.kind for e in await services.storage.events(user.id)]
    assert "AlreadyCompliant" not in kinds
    assert tenant.state.requests[ASSIGN] == 0
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []


async def test_rule_assigns_directly_when_its_group_fails(
    services: Services, tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """assignDirectlyWhenGroupFails: the SKU is assigned directly and the group failure noted in the audit trail."""
    policy = json.loads((REPO / "licensing-policy.json").read_text())
    for rule in policy["rules"]:
        rule["assignDirectlyWhenGroupFails"] = True
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    services.settings = replace(services.settings, policy_path=path)
    services._policy = None
    user = hire(tenant, "direct")
    tenant.state.add_group_license(user.id, "EMS", GROUP, state="Error", error="Other")
    await invoke("onboard", request(user.user_principal_name))
    assert (await statuses(services, user.id))["EMS"].outcome == "assigned"
    assert [a.assigned_by_group for a in tenant.state.user(user.id).assignments] == [None]
    [noted] = [e for e in await services.storage.events(user.id) if e.kind == "AdminActionRequired"]
    assert "in error (Other" in noted.detail
    assert "assigned directly instead" in noted.detail


async def test_usage_location_just_set_is_retried_through_the_queue_until_it_replicates(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assignLicense right after our PATCH says "invalid usage location": re-sent with a delay, then assigned."""
    monkeypatch.setattr(onboard_outcomes, "LOCATION_LAG_SECONDS", 1)
    tenant.state.strictness.usage_location_lag = 3600  # replicating until the test says otherwise
    user = hire(tenant, "lagging", location=None)
    await invoke("onboard", request(user.user_principal_name))
    assert await statuses(services, user.id) == {}
    deferred = (await services.storage.events(user.id))[0]
    assert deferred.kind == "RequestDeferred"
    assert "replication lag" in deferred.detail
    [retry] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert retry["usageLocationWaits"] == 1
    tenant.state.strictness.usage_location_lag = 0  # replicated
    await invoke("onboard", retry)
    assert (await statuses(services, user.id))["EMS"].outcome == "assigned"
    assert tenant.state.requests["PATCH /users/{id}"] == 1


async def test_usage_location_lag_gives_up_after_bounded_waits_naming_the_lag(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Still refused after the last allowed wait: failed, the reason naming the replication lag, no more retries."""
    monkeypatch.setattr(onboard_outcomes, "LOCATION_LAG_SECONDS", 0)
    tenant.state.strictness.usage_location_lag = 3600
    user = hire(tenant, "neverready", location=None)
    await invoke("onboard", request(user.user_principal_name))
    [retry] = await drain(services, LICENSE_REQUESTS_QUEUE)
    await invoke("onboard", {**retry, "usageLocationWaits": onboard_outcomes.LOCATION_LAG_ATTEMPTS})
    row = (await statuses(services, user.id))["-"]
    assert row.outcome == "failed"
    assert "invalid usage location" in row.reason
    assert "replication lag longer than expected" in row.reason
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


async def test_invalid_usage_location_without_one_just_set_stays_permanent(
    services: Services, tenant: EmulatedTenant
) -> None:
    """Someone else set the location a moment ago: Graph's refusal is recorded failed at once, as before."""
    tenant.state.strictness.usage_location_lag = 3600
    user = hire(tenant, "elsewhere", location=None)
    tenant.state.set_user(user.id, {"usageLocation": "US"})
    await invoke("onboard", request(user.user_principal_name))
    row = (await statuses(services, user.id))["-"]
    assert row.outcome == "failed"
    assert "invalid usage location" in row.reason
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


async def test_soft_deleted_user_notification_is_an_audit_event_only(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A soft-deleted user arrives as "updated": its 404 costs one deletedItems read and no retry, then one audit
    event says it is gone; no row, no message sent again."""
    user = hire(tenant, "departed")
    tenant.state.delete_user(user.id)
    await invoke("onboard", {**request(user.id), "source": "graph"})
    assert await statuses(services, user.id) == {}
    [gone] = await services.storage.events(user.id)
    assert gone.kind == "RequestRejected"
    assert "no longer exists (soft-deleted: in Graph's deleted items" in gone.detail
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []
    assert (tenant.state.requests[GET_USER], tenant.state.requests[DELETED_ITEM]) == (1, 1)


@pytest.fixture
async def notified(services: Services, tenant: EmulatedTenant) -> AsyncIterator[LocalHttp]:
    """The app's HTTP functions on loopback, subscribed to users changes by the app's own timer."""
    async with LocalHttp(function_app.app) as running:
        services.settings = replace(
            services.settings,
            graph_notification_url=f"{running.base_url}/graph/notifications?code=function-key",
            graph_lifecycle_url=f"{running.base_url}/graph/lifecycle?code=function-key",
        )
        await running.run_timer("graph_subscription")
        yield running


async def queued(services: Services, *, within: float = 10.0) -> list[dict[str, Any]]:
    """Wait (up to ``within`` seconds) for Graph's notification to land on license-requests, then take it."""
    client = services.storage.queue(LICENSE_REQUESTS_QUEUE)
    deadline = asyncio.get_running_loop().time() + within
    while not (await client.get_queue_properties()).approximate_message_count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no notification reached {LICENSE_REQUESTS_QUEUE} within {within} s")
        await asyncio.sleep(0.05)
    return await drain(services, LICENSE_REQUESTS_QUEUE)


async def test_echo_of_our_own_assignment_costs_one_user_read_and_writes_nothing(
    services: Services, tenant: EmulatedTenant, notified: LocalHttp
) -> None:
    """Our assignLicense comes back as an "updated" notification: one user read finds nothing to change; no Graph
    write, no status row, no audit event, no message."""
    user = hire(tenant, "echo")
    await invoke("onboard", request(user.user_principal_name))
    [echo] = await queued(services)
    assert (echo["user"], echo["source"]) == (user.id, "graph")
    before = Counter(tenant.state.requests)
    rows, events, checks = (
        await statuses(services, user.id),
        await services.storage.events(user.id),
        await waiting(services),
    )
    await invoke("onboard", echo)
    spent = Counter(tenant.state.requests) - before
    assert spent[GET_USER] == 1
    assert set(spent) <= {GET_USER, "GET /subscribedSkus"}  # the catalog is cached (a TTL of 0 in tests)
    assert await statuses(services, user.id) == rows
    assert await services.storage.events(user.id) == events
    assert await waiting(services) == checks


async def waiting(services: Services) -> tuple[int, int]:
    """Messages on license-requests and license-verify, visible or delayed."""
    requests, checks = [
        (await services.storage.queue(name).get_queue_properties()).approximate_message_count or 0
        for name in (LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE)
    ]
    return requests, checks


async def test_dollar_upn_user_is_onboarded_by_upn(services: Services, tenant: EmulatedTenant) -> None:
    """A request naming a `$` UPN reaches the user (addressed as /users('...')) and assigns the license."""
    user = tenant.state.add_user("$svc@contoso.onmicrosoft.com", "Svc", usage_location="US", department="Sales")
    await invoke("onboard", request(user.user_principal_name))
    assert (await statuses(services, user.id))["EMS"].outcome == "assigned"
    assert tenant.state.requests["GET /users/{id}"] == 2
