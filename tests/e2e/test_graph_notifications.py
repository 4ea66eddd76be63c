"""Graph change notifications end to end: the timer subscribes, Graph (emulated) notifies over real HTTP,
the local host runs the functions from function_app.py, and a new user ends verified."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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
    async with LocalHttp(function_app.app) as running:
        services.settings = replace(
            services.settings,
            graph_notification_url=f"{running.base_url}/graph/notifications?code=function-key",
            graph_lifecycle_url=f"{running.base_url}/graph/lifecycle?code=function-key",
        )
        yield running


def item(user_id: str, state: str = CLIENT_STATE, **extra: Any) -> dict[str, Any]:
    """One users change notification as Graph sends it."""
    return {
        "subscriptionId": "s1",
        "changeType": "updated",
        "clientState": state,
        "resource": f"Users/{user_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user_id}", "id": user_id},
        "tenantId": "t",
        "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
        **extra,
    }


def notification(user_id: str, state: str = CLIENT_STATE, **extra: Any) -> bytes:
    """A Graph change notification body for one user."""
    return json.dumps({"value": [item(user_id, state, **extra)]}).encode()


async def call(name: str, body: bytes, params: dict[str, str] | None = None) -> HttpResponse:
    """Call a registered HTTP function with a real HttpRequest."""
    headers = {"Content-Type": "application/json"}
    url = f"http://localhost/api/{name}"
    request = HttpRequest(method="POST", url=url, headers=headers, params=params or {}, body=body)
    response: HttpResponse = await user_function(function_app.app, name)(request)
    return response


async def answer(body: bytes) -> tuple[int, dict[str, Any]]:
    """POST a notification batch; the status and the decoded answer."""
    response = await call("graph_notifications", body)
    return response.status_code, json.loads(response.get_body())


async def test_validation_handshake_echoes_the_token_as_text(services: Services) -> None:
    """?validationToken=... -> 200 text/plain with the token, for both endpoints."""
    for name in ("graph_notifications", "graph_lifecycle"):
        response = await call(name, b"", {"validationToken": "Validation: Testing client application reachability"})
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        assert response.get_body() == b"Validation: Testing client application reachability"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("token", ["x" * 1025, "<script>\x00", "a\r\nSet-Cookie: s=1"], ids=["long", "nul", "crlf"])
async def test_an_overlong_or_control_character_token_is_refused(services: Services, token: str) -> None:
    """A validation token over 1,024 characters or with control characters is a 400 and never echoed."""
    for name in ("graph_notifications", "graph_lifecycle"):
        response = await call(name, b"", {"validationToken": token})
        assert response.status_code == 400
        assert token.encode() not in response.get_body()


async def test_client_state_mismatch_is_ignored_and_counted(services: Services) -> None:
    """A notification with a wrong clientState is acknowledged (202) but enqueues nothing."""
    response = await call("graph_notifications", notification("u1", "forged"))
    assert response.status_code == 202
    expected = {"queued": 0, "duplicates": 0, "clientStateMismatches": 1, "foreign": 0, "ignored": 0}
    assert json.loads(response.get_body()) == expected
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


def batch(*items: dict[str, Any]) -> bytes:
    """A notification body holding these items."""
    return json.dumps({"value": list(items)}).encode()


async def test_a_batch_over_a_thousand_items_is_refused_at_once(services: Services) -> None:
    """3,000 items in one POST: 413 well inside Graph's 3 s, and nothing queued."""
    started = time.monotonic()
    status, body = await answer(batch(*(item(f"u{n}") for n in range(3000))))
    assert (status, body["error"]) == (413, "3,000 notifications in one request; the limit is 1,000")
    assert time.monotonic() - started < 3
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


async def test_a_full_batch_is_acked_in_time_with_bounded_sends_and_no_user_lost(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 items for 500 users: at most 32 sends in flight, every answer within 3 s, every user queued.

    Should Azurite be too slow for one answer, the 503 asks Graph to redeliver and the redelivery queues the rest;
    only a send cut off mid-flight at the deadline (at most 32 per cut) can be queued twice.
    """
    from licensing.services import notifications  # noqa: PLC0415

    real_send, in_flight, most = services.storage.send, [0], [0]

    async def counted(*args: Any, **kwargs: Any) -> None:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        try:
            await real_send(*args, **kwargs)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(services.storage, "send", counted)
    users = [f"user-{n}" for n in range(500)]
    body = batch(*(item(u) for u in users + users))
    cuts = 0
    for _ in range(5):  # Graph's redeliveries
        started = time.monotonic()
        status, _ = await answer(body)
        assert time.monotonic() - started < 3
        if status == 202:
            break
        assert status == 503
        cuts += 1
    assert status == 202
    assert most[0] <= notifications.SEND_CONCURRENCY == 32
    queued = [m["user"] for m in await drain(services, LICENSE_REQUESTS_QUEUE, wait_seconds=30)]
    assert sorted(set(queued)) == sorted(users)
    assert len(queued) - len(users) <= notifications.SEND_CONCURRENCY * cuts


async def test_storage_that_hangs_gets_a_503_in_time_and_the_redelivery_queues_only_the_rest(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sends that do not finish by the deadline: 503 with Retry-After; Graph's redelivery queues those, once each."""
    from licensing.services import notifications  # noqa: PLC0415

    monkeypatch.setattr(notifications, "DEADLINE_SECONDS", 0.5)
    real_send, hang = services.storage.send, asyncio.Event()

    async def half_stuck(queue: str, payload: dict[str, Any], **kwargs: Any) -> None:
        if payload["user"].endswith("-slow"):
            await hang.wait()
        await real_send(queue, payload, **kwargs)

    monkeypatch.setattr(services.storage, "send", half_stuck)
    body = batch(item("a-fast"), item("b-slow"), item("c-fast"), item("d-slow"))
    response = await asyncio.wait_for(call("graph_notifications", body), timeout=5)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert json.loads(response.get_body())["retry"] == 2
    monkeypatch.setattr(services.storage, "send", real_send)
    status, reply = await answer(body)
    assert (status, reply["queued"], reply["duplicates"]) == (202, 2, 2)
    queued = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert sorted(m["user"] for m in queued) == ["a-fast", "b-slow", "c-fast", "d-slow"]


async def test_the_same_notification_delivered_again_is_queued_once(services: Services) -> None:
    """A replay of a notification already queued is acknowledged as a duplicate, not queued again."""
    assert await answer(notification("u7")) == (
        202,
        {"queued": 1, "duplicates": 0, "clientStateMismatches": 0, "foreign": 0, "ignored": 0},
    )
    assert (await answer(notification("u7")))[1]["duplicates"] == 1
    assert [m["user"] for m in await drain(services, LICENSE_REQUESTS_QUEUE)] == ["u7"]
    # Graph's own notification id tells two real changes apart even when everything else is the same.
    await answer(notification("u7", id="n-1"))
    await answer(notification("u7", id="n-2"))
    assert len(await drain(services, LICENSE_REQUESTS_QUEUE)) == 2


async def test_another_tenants_notification_is_ignored_and_counted(services: Services, tenant: EmulatedTenant) -> None:
    """With LICENSING_TENANT_ID set, an item naming another tenant queues nothing, even with our clientState."""
    services.settings = replace(services.settings, tenant_id=tenant.state.tenant_id)
    status, reply = await answer(notification("u1", tenantId="0badc0de-0000-4000-8000-000000000000"))
    assert (status, reply["queued"], reply["foreign"]) == (202, 0, 1)
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []
    status, reply = await answer(notification("u2", tenantId=tenant.state.tenant_id.upper()))
    assert (status, reply["queued"], reply["foreign"]) == (202, 1, 0)


async def test_a_subscription_that_is_not_ours_is_ignored_once_the_timer_recorded_ours(
    services: Services, tenant: EmulatedTenant, http: LocalHttp
) -> None:
    """After the timer subscribes, notifications for any other subscriptionId are foreign; Graph's real ones queue."""
    await http.run_timer("graph_subscription")
    status, reply = await answer(notification("u1", subscriptionId="someone-elses"))
    assert (status, reply["queued"], reply["foreign"]) == (202, 0, 1)
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []
    user = hire(tenant, "subscribed")
    [delivery] = await tenant.notify_user_changed(user.id)
    assert delivery.status == 202
    [message] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert message["user"] == user.id


async def test_a_lifecycle_event_for_a_subscription_that_is_not_ours_does_nothing(
    services: Services, tenant: EmulatedTenant, http: LocalHttp
) -> None:
    """reauthorizationRequired naming another subscription (with our clientState) calls nothing on Graph."""
    await http.run_timer("graph_subscription")
    body = json.dumps(
        {
            "value": [
                {
                    "subscriptionId": "someone-elses",
                    "clientState": CLIENT_STATE,
                    "tenantId": "t",
                    "lifecycleEvent": "reauthorizationRequired",
                }
            ]
        }
    ).encode()
    response = await call("graph_lifecycle", body)
    assert (response.status_code, json.loads(response.get_body())) == (202, {"handled": 0})
    assert tenant.state.requests["POST /subscriptions/{id}/reauthorize"] == 0
