"""Graph change notifications end to end: the timer subscribes, Graph (emulated) notifies over real HTTP,
the local host runs the functions from function_app.py, and a new user ends verified."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.functions import HttpRequest, HttpResponse

import function_app
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost, user_function
from licensing.dev.localhttp import LocalHttp
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from licensing.services.subscriptions import LIFETIME, keep_alive
from tests.conftest import CLIENT_STATE
from tests.helpers import drain, hire, statuses


@pytest.fixture
async def http(services: Services) -> AsyncIterator[LocalHttp]:
    """The app's HTTP functions served on loopback, with GRAPH_NOTIFICATION_URL / _LIFECYCLE_URL pointing at them."""
    from dataclasses import replace  # noqa: PLC0415

    async with LocalHttp(function_app.app) as running:
        services.settings = replace(
            services.settings,
            graph_notification_url=f"{running.base_url}/graph/notifications?code=function-key",
            graph_lifecycle_url=f"{running.base_url}/graph/lifecycle?code=function-key",
        )
        yield running


def notification(user_id: str, state: str) -> bytes:
    """A Graph change notification body for one user."""
    return json.dumps({"value": [{
        "subscriptionId": "s1", "changeType": "updated", "clientState": state, "resource": f"Users/{user_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user_id}", "id": user_id},
        "tenantId": "t", "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
    }]}).encode()  # fmt: skip


async def call(name: str, body: bytes, params: dict[str, str] | None = None) -> HttpResponse:
    """Call a registered HTTP function with a real HttpRequest."""
    headers = {"Content-Type": "application/json"}
    request = HttpRequest(method="POST", url=f"http://localhost/api/{name}", headers=headers, params=params or {},
                          body=body)  # fmt: skip
    response: HttpResponse = await user_function(function_app.app, name)(request)
    return response


async def test_validation_handshake_echoes_the_token_as_text(services: Services) -> None:
    """?validationToken=... -> 200 text/plain with the token, for both endpoints."""
    for name in ("graph_notifications", "graph_lifecycle"):
        response = await call(name, b"", {"validationToken": "Validation: Testing client application reachability"})
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        assert response.get_body() == b"Validation: Testing client application reachability"


async def test_client_state_mismatch_is_ignored_and_counted(services: Services) -> None:
    """A notification with a wrong clientState is acknowledged (202) but enqueues nothing."""
    response = await call("graph_notifications", notification("u1", "forged"))
    assert response.status_code == 202
    assert json.loads(response.get_body()) == {"queued": 0, "clientStateMismatches": 1, "ignored": 0}
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


async def test_matching_notification_enqueues_an_onboarding_request(services: Services) -> None:
    """The right clientState: one license-requests message for that user, source graph."""
    response = await call("graph_notifications", notification("u42", CLIENT_STATE))
    assert response.status_code == 202
    [message] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert (message["user"], message["source"]) == ("u42", "graph")


async def test_timer_creates_then_keeps_then_renews_the_subscription(
    services: Services, tenant: EmulatedTenant, http: LocalHttp
) -> None:
    """First run subscribes (Graph's handshake hits our endpoint); later runs renew only near expiry."""
    now = datetime.now(UTC)
    await http.run_timer("graph_subscription")
    [subscription] = tenant.state.subscriptions.values()
    assert subscription.notification_url == services.settings.graph_notification_url
    assert subscription.client_state == CLIENT_STATE
    assert subscription.expiration - now <= timedelta(minutes=41_760)
    assert await keep_alive(services, now=datetime.now(UTC)) == "ok"
    later = LIFETIME - timedelta(days=2)  # both clocks move: ours and the tenant's
    tenant.state.clock = lambda: time.time() + later.total_seconds()
    assert await keep_alive(services, now=datetime.now(UTC) + later) == "renewed"
    assert tenant.state.requests["PATCH /subscriptions/{id}"] == 1
    assert len(tenant.state.subscriptions) == 1


async def test_new_user_in_entra_flows_to_a_verified_row(
    services: Services, tenant: EmulatedTenant, http: LocalHttp, azurite: Azurite
) -> None:
    """Entra creates a user -> Graph notifies -> onboard -> verify: EMS verified with INTUNE_A disabled."""
    await http.run_timer("graph_subscription")
    user = hire(tenant, "newcomer", location=None)
    [delivery] = await tenant.notify_user_changed(user.id)
    assert delivery.status == 202
    host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=0, poll_interval=0.05)
    try:
        await host.run_until_idle(limit_seconds=30)
    finally:
        await host.close()
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "verified"
    assert row.plan_statuses["INTUNE_A"] == "Disabled"
    assert row.source == "graph"


async def test_reauthorization_required_is_answered_by_reauthorizing_and_renewing(
    services: Services, tenant: EmulatedTenant, http: LocalHttp
) -> None:
    """The lifecycle endpoint reacts to reauthorizationRequired with /reauthorize and a PATCH."""
    await http.run_timer("graph_subscription")
    [subscription_id] = tenant.state.subscriptions
    [delivery] = await tenant.send_lifecycle(subscription_id, "reauthorizationRequired")
    assert delivery.status == 202
    assert tenant.state.requests["POST /subscriptions/{id}/reauthorize"] == 1
    assert tenant.state.requests["PATCH /subscriptions/{id}"] == 1


async def test_subscription_removed_is_recreated(services: Services, tenant: EmulatedTenant, http: LocalHttp) -> None:
    """subscriptionRemoved -> the lifecycle handler subscribes again."""
    await http.run_timer("graph_subscription")
    [old] = tenant.state.subscriptions
    await tenant.send_lifecycle(old, "subscriptionRemoved")
    [new] = tenant.state.subscriptions
    assert new != old


async def test_unconfigured_notifications_do_nothing(services: Services, tenant: EmulatedTenant) -> None:
    """Without GRAPH_NOTIFICATION_URL the timer does not touch Graph."""
    assert await keep_alive(services, now=datetime.now(UTC)) == "not-configured"
    assert tenant.state.requests["GET /subscriptions"] == 0
