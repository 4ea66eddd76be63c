"""Change-notification subscriptions on the emulated tenant: the handshake, renewals, notifications, the real SDK."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription as GraphSubscription

from licensing.dev.tenant import MAX_USER_MINUTES, EmulatedTenant, TenantState
from licensing.dev.tenant.subscriptions import APPLICATION_ID, CREATOR_ID

DOMAIN = "contoso.onmicrosoft.com"
AISHA = f"aisha.khan@{DOMAIN}"
SECRET = "s3cret-client-state"


class Receiver:
    """A loopback webhook: answers Graph's validation handshake as told and queues every notification."""

    def __init__(self) -> None:
        self.mode = "echo"  # "echo" | "error" (500) | "wrong-token" | "hang" (until the test ends)
        self.validations: list[tuple[str, str, str]] = []  # (path, token, content type) per handshake
        self.notifications: asyncio.Queue[tuple[str, dict[str, Any], str]] = asyncio.Queue()
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    def url(self, path: str = "/hook") -> str:
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is None:
            await self.notifications.put((request.path, await request.json(), request.headers["Content-Type"]))
            return web.Response(status=202)
        self.validations.append((request.path, token, request.headers["Content-Type"]))
        if self.mode == "error":
            return web.Response(status=500)
        if self.mode == "wrong-token":
            return web.Response(text="not the token", content_type="text/plain")
        if self.mode == "hang":
            await self.release.wait()
        return web.Response(text=token, content_type="text/plain")

    async def next_notification(self) -> tuple[str, dict[str, Any], str]:
        return await asyncio.wait_for(self.notifications.get(), timeout=2)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.server.start_server()
    yield hook
    hook.release.set()
    await hook.server.close()


@pytest.fixture
async def tenant() -> AsyncIterator[EmulatedTenant]:
    async with EmulatedTenant(TenantState.default(provisioning_delay=0)) as running:
        yield running


def in_minutes(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def subscription(url: str, **changes: Any) -> dict[str, Any]:
    body = {
        "changeType": "updated,deleted",
        "notificationUrl": url,
        "resource": "users",
        "expirationDateTime": in_minutes(60 * 24),
        "clientState": SECRET,
    }
    return body | changes


async def create(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/subscriptions", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# --- create and the validation handshake ----------------------------------------------------------


async def test_create_validates_both_endpoints_then_answers_201(
    http: httpx.AsyncClient, receiver: Receiver, tenant: EmulatedTenant
) -> None:
    """POST /subscriptions sends the text/plain handshake to both URLs and answers 201 with Graph's shape."""
    body = subscription(receiver.url(), lifecycleNotificationUrl=receiver.url("/lifecycle"))
    created = await create(http, body)
    assert [(path, kind) for path, _, kind in receiver.validations] == [
        ("/hook", "text/plain; charset=utf-8"),
        ("/lifecycle", "text/plain; charset=utf-8"),
    ]
    assert receiver.validations[0][1].startswith("Validation: Testing client application reachability")
    assert created["@odata.context"].endswith("/v1.0/$metadata#subscriptions/$entity")
    expected = {
        "resource": "users",
        "changeType": "updated,deleted",
        "clientState": SECRET,
        "includeResourceData": False,
    }
    assert {k: created[k] for k in expected} == expected
    assert (created["notificationUrl"], created["lifecycleNotificationUrl"]) == (
        receiver.url(),
        receiver.url("/lifecycle"),
    )
    assert created["latestSupportedTlsVersion"] == "v1_2"
    assert (created["applicationId"], created["creatorId"]) == (APPLICATION_ID, CREATOR_ID)
    assert created["expirationDateTime"].endswith("Z")
    assert list(tenant.state.subscriptions) == [created["id"]]
    assert tenant.state.requests["POST /subscriptions"] == 1


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (
            "error",
            "Subscription validation request failed. HTTP status code is 'InternalServerError'. "
            "Notification endpoint must respond with 200 OK to validation request.",
        ),
        (
            "wrong-token",
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        ),
        ("hang", "Subscription validation request timed out."),
    ],
)
async def test_failed_handshake_is_a_400_and_creates_nothing(
    http: httpx.AsyncClient, receiver: Receiver, tenant: EmulatedTenant, mode: str, message: str
) -> None:
    """A 500, a wrong echo or no answer within the timeout refuses the subscription with Graph's message."""
    receiver.mode, tenant.webhooks.validation_timeout = mode, 0.1
    response = await http.post("/subscriptions", json=subscription(receiver.url()))
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["message"]) == ("ValidationError", message)
    assert len(receiver.validations) == 1
    assert (await http.get("/subscriptions")).json()["value"] == []


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        (
            {"expirationDateTime": MAX_USER_MINUTES + 5},  # minutes from when the test runs, not from collection
            "ExtensionError",
            "Subscription expiration can only be 41760 minutes in the future.",
        ),
        ({"expirationDateTime": -1}, "InvalidRequest", "Subscription expiration must be in the future."),
        ({"changeType": "created,updated"}, "InvalidRequest", "Invalid 'changeType' attribute: 'created'."),
        ({"notificationUrl": "https://example.com/hook"}, "InvalidRequest", "loopback hosts only"),
        ({"resource": "groups"}, "InvalidRequest", "Resource 'groups' is not supported"),
    ],
)
async def test_invalid_subscriptions_are_refused_before_any_handshake(
    http: httpx.AsyncClient, receiver: Receiver, changes: dict[str, Any], code: str, message: str
) -> None:
    """Too long or past expirations, "created" on users, non-loopback URLs and other resources are 400s."""
    if isinstance(minutes := changes.get("expirationDateTime"), int):
        changes = {**changes, "expirationDateTime": in_minutes(minutes)}
    response = await http.post("/subscriptions", json=subscription(receiver.url(), **changes))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert message in response.json()["error"]["message"]
    assert receiver.validations == []


async def test_subscription_requests_draw_injected_faults(
    http: httpx.AsyncClient, receiver: Receiver, tenant: EmulatedTenant
) -> None:
    """A throttled POST /subscriptions is a 429 with Retry-After and never reaches the handshake."""
    tenant.faults.throttle_next = 1
    response = await http.post("/subscriptions", json=subscription(receiver.url()))
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    assert (receiver.validations, tenant.state.faulted["POST /subscriptions"]) == ([], 1)


# --- renew, delete, reauthorize -------------------------------------------------------------------


async def test_patch_renews_the_expiration_within_the_same_limit(
    http: httpx.AsyncClient, receiver: Receiver, tenant: EmulatedTenant
) -> None:
    """PATCH with a later expirationDateTime answers 200 with it; one beyond 41,760 minutes is a 400."""
    created = await create(http, subscription(receiver.url()))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    renewed = await http.patch(f"/subscriptions/{created['id']}", json={"expirationDateTime": later.isoformat()})
    assert renewed.status_code == 200
    assert dt.datetime.fromisoformat(renewed.json()["expirationDateTime"]) == later
    too_far = await http.patch(f"/subscriptions/{created['id']}", json={"expirationDateTime": in_minutes(50_000)})
    assert (too_far.status_code, too_far.json()["error"]["code"]) == (400, "ExtensionError")
    fetched = (await http.get(f"/subscriptions/{created['id']}")).json()
    assert fetched["expirationDateTime"] == renewed.json()["expirationDateTime"]
    assert tenant.state.requests["PATCH /subscriptions/{id}"] == 2


async def test_delete_answers_204_and_the_subscription_is_gone(http: httpx.AsyncClient, receiver: Receiver) -> None:
    """DELETE answers 204; GET and DELETE of the id then answer 404 ResourceNotFound."""
    created = await create(http, subscription(receiver.url()))
    assert (await http.delete(f"/subscriptions/{created['id']}")).status_code == 204
    for response in (
        await http.get(f"/subscriptions/{created['id']}"),
        await http.delete(f"/subscriptions/{created['id']}"),
    ):
        assert response.status_code == 404
        assert (response.json()["error"]["code"], response.json()["error"]["message"]) == (
            "ResourceNotFound",
            "The object was not found.",
        )


# --- notifications ----------------------------------------------------------------------------------


async def test_notify_user_changed_posts_graphs_payload_with_client_state(
    http: httpx.AsyncClient, receiver: Receiver, tenant: EmulatedTenant
) -> None:
    """An "updated" user reaches subscriptions asking for updates, as Graph's changeNotificationCollection."""
    created = await create(http, subscription(receiver.url()))
    await create(http, subscription(receiver.url("/deletes-only"), changeType="deleted"))
    aisha = tenant.state.user(AISHA).id
    assert await tenant.notify_user_changed(AISHA) == [(receiver.url(), 202)]
    path, payload, content_type = await receiver.next_notification()
    assert (path, content_type) == ("/hook", "application/json")
    assert payload == {
        "value": [
            {
                "subscriptionId": created["id"],
                "subscriptionExpirationDateTime": created["expirationDateTime"],
                "changeType": "updated",
                "resource": f"Users/{aisha}",
                "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{aisha}", "id": aisha},
                "clientState": SECRET,
                "tenantId": tenant.state.tenant_id,
            }
        ]
    }
    assert receiver.notifications.empty()


async def test_lifecycle_notifications_and_reauthorize(
    http: httpx.AsyncClient, receiver: Receiver, tenant: EmulatedTenant
) -> None:
    """reauthorizationRequired reaches lifecycleNotificationUrl; reauthorize is 204; subscriptionRemoved removes it."""
    created = await create(http, subscription(receiver.url(), lifecycleNotificationUrl=receiver.url("/lifecycle")))
    assert await tenant.send_lifecycle(created["id"], "reauthorizationRequired") == [(receiver.url("/lifecycle"), 202)]
    path, payload, _ = await receiver.next_notification()
    assert path == "/lifecycle"
    assert payload["value"] == [
        {
            "subscriptionId": created["id"],
            "subscriptionExpirationDateTime": created["expirationDateTime"],
            "tenantId": tenant.state.tenant_id,
            "clientState": SECRET,
            "lifecycleEvent": "reauthorizationRequired",
        }
    ]
    assert (await http.post(f"/subscriptions/{created['id']}/reauthorize")).status_code == 204
    async with httpx.AsyncClient(base_url=tenant.root_url) as admin:
        removal = {"subscriptionId": created["id"], "event": "subscriptionRemoved"}
        answer = await admin.post("/_emulator/lifecycle", json=removal)
    assert answer.json() == {"deliveries": [{"url": receiver.url("/lifecycle"), "status": 202}]}
    assert (await receiver.next_notification())[1]["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
    assert (await http.get(f"/subscriptions/{created['id']}")).status_code == 404


async def test_admin_notify_and_auto_notify_on_patch(
    http: httpx.AsyncClient, receiver: Receiver, tenant: EmulatedTenant
) -> None:
    """POST /_emulator/notify delivers at once; with auto_notify a PATCH /users/{id} notifies in the background."""
    await create(http, subscription(receiver.url()))
    async with httpx.AsyncClient(base_url=tenant.root_url) as admin:
        answer = await admin.post("/_emulator/notify", json={"userId": AISHA, "changeType": "deleted"})
        assert answer.json() == {"deliveries": [{"url": receiver.url(), "status": 202}]}
        assert (await receiver.next_notification())[1]["value"][0]["changeType"] == "deleted"
        settings = await admin.post("/_emulator/settings", json={"auto_notify": True})
        assert settings.json()["auto_notify"] is True
    assert (await http.patch(f"/users/{AISHA}", json={"department": "Sales"})).status_code == 204
    _, payload, _ = await receiver.next_notification()
    assert payload["value"][0]["resourceData"]["id"] == tenant.state.user(AISHA).id


# --- the real msgraph-sdk -----------------------------------------------------------------------------


async def test_sdk_creates_renews_and_lists_subscriptions(graph: GraphServiceClient, receiver: Receiver) -> None:
    """GraphServiceClient.subscriptions post, by_subscription_id(...).patch and get work unchanged."""
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    asked = GraphSubscription(
        change_type="updated",
        notification_url=receiver.url(),
        resource="/users",
        expiration_date_time=expires,
        client_state=SECRET,
    )
    created = await graph.subscriptions.post(asked)
    assert (created.resource, created.client_state, created.expiration_date_time) == ("/users", SECRET, expires)
    later = expires + dt.timedelta(days=10)
    renewed = await graph.subscriptions.by_subscription_id(created.id).patch(
        GraphSubscription(expiration_date_time=later)
    )
    assert renewed.expiration_date_time == later
    listed = await graph.subscriptions.get()
    assert [(s.id, s.expiration_date_time) for s in listed.value] == [(created.id, later)]
    asked.expiration_date_time = expires + dt.timedelta(days=30)
    with pytest.raises(ODataError) as refused:
        await graph.subscriptions.post(asked)
    assert refused.value.response_status_code == 400
    assert refused.value.error.code == "ExtensionError"
