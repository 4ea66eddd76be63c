"""The /subscriptions endpoints of Graph v1.0: create (with the validation handshake), list, get, renew,
delete and reauthorize. Routed, counted and faulted by graph_api.dispatch like every other endpoint.

POST   /subscriptions                    201 with the subscription, after notificationUrl (and
                                         lifecycleNotificationUrl) answered the handshake
GET    /subscriptions                    200 {"value": [...]}
GET    /subscriptions/{id}               200, or 404 ResourceNotFound
PATCH  /subscriptions/{id}               200 with the subscription: expirationDateTime and/or notificationUrl
DELETE /subscriptions/{id}               204
POST   /subscriptions/{id}/reauthorize   204
"""

from __future__ import annotations

from collections.abc import Mapping

from licensing.dev.tenant.model import GraphError
from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse, json_body, ok
from licensing.dev.tenant.subscriptions import INVALID, expiration, loopback_url, new_subscription, render

_UPDATABLE = {"expirationDateTime", "notificationUrl"}


def _entity_context(req: GraphRequest) -> dict[str, str]:
    return {"@odata.context": f"{req.base_url}/$metadata#subscriptions/$entity"}


async def create_subscription(ctx: Context, req: GraphRequest, _: Mapping[str, str]) -> GraphResponse:
    """POST /subscriptions: check the body, validate the endpoint(s), then 201 with the subscription."""
    sub = new_subscription(json_body(req), ctx.webhooks.now())
    if sub.user_id is not None:
        ctx.state.user(sub.user_id)  # a single-user subscription needs an existing user
    await ctx.webhooks.validate(sub.notification_url)
    if sub.lifecycle_notification_url is not None:
        await ctx.webhooks.validate(sub.lifecycle_notification_url)
    ctx.state.subscriptions[sub.id] = sub
    ctx.state.writes["createSubscription"] += 1
    return ok(_entity_context(req) | render(sub), status=201)


def list_subscriptions(ctx: Context, req: GraphRequest, _: Mapping[str, str]) -> GraphResponse:
    """GET /subscriptions: every live subscription (all made by the emulator's one app)."""
    value = [render(s) for s in ctx.webhooks.live()]
    return ok({"@odata.context": f"{req.base_url}/$metadata#subscriptions", "value": value})


def get_subscription(ctx: Context, req: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """GET /subscriptions/{id}."""
    return ok(_entity_context(req) | render(ctx.webhooks.find(params["id"])))


async def update_subscription(ctx: Context, req: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """PATCH /subscriptions/{id}: renew (same limits as creation) and/or move notificationUrl; re-validates."""
    sub = ctx.webhooks.find(params["id"])
    body = {k: v for k, v in json_body(req).items() if k != "@odata.type"}
    refused = sorted(set(body) - _UPDATABLE)
    if refused:
        message = (
            f"Property '{refused[0]}' cannot be updated; a subscription renews its expirationDateTime "
            "or moves its notificationUrl only."
        )
        raise GraphError(400, INVALID, message)
    renews = "expirationDateTime" in body or "notificationUrl" not in body  # an empty PATCH lacks the expiration
    renewed = expiration(body, ctx.webhooks.now(), operation="update") if renews else None
    url = loopback_url(str(body["notificationUrl"])) if "notificationUrl" in body else sub.notification_url
    await ctx.webhooks.validate(url)
    sub.notification_url = url
    sub.expiration = renewed or sub.expiration
    ctx.state.writes["updateSubscription"] += 1
    return ok(_entity_context(req) | render(sub))


def delete_subscription(ctx: Context, _: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """DELETE /subscriptions/{id}: 204."""
    del ctx.state.subscriptions[ctx.webhooks.find(params["id"]).id]
    ctx.state.writes["deleteSubscription"] += 1
    return GraphResponse(204, None)


async def reauthorize_subscription(ctx: Context, _: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """POST /subscriptions/{id}/reauthorize: re-validates the endpoint, keeps the expiration; 204."""
    sub = ctx.webhooks.find(params["id"])
    await ctx.webhooks.validate(sub.notification_url)
    ctx.state.writes["reauthorizeSubscription"] += 1
    return GraphResponse(204, None)
