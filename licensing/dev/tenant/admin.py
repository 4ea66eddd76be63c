"""The emulator's own controls under /_emulator: not Graph, and never subject to injected faults.

GET  /_emulator/health           {"status": "ok", ...}
GET  /_emulator/stats            request counters by route, faults, writes (applied, throttled), seats per SKU
POST /_emulator/faults           {"throttle_rate": 0.2, "retry_after": 2, "write_budget": 30, "write_window": 150,
                                  "slow_rate": 0.1, "slow_ms": 5000, ...} -> the faults now in force
POST /_emulator/users            a seed-style user (userPrincipalName, displayName, licenses...) -> 201
POST /_emulator/reset-counters   204
POST /_emulator/plan-status      {"user": id-or-upn, "plan": "INTUNE_A", "status": "Error" | null}
POST /_emulator/settings         {"provisioning_delay": 0, "auto_notify": true} (either or both)
POST /_emulator/delete-user      {"user": id-or-upn, "permanent": false} -> 204 (see TenantState.delete_user)
POST /_emulator/strictness       {"shuffle_batch": false, ...} (Strictness fields) -> the strictness now in force
POST /_emulator/activation       {"require": "INTUNE_A"} or {"activate": "INTUNE_A"} -> 204
POST /_emulator/skus/{part}/plans  {"id": guid, "name": "NEW_PLAN", "service": "exchange"} -> 201: a plan
                                 Microsoft added to the SKU (PendingProvisioning until activated)
POST /_emulator/group-licenses   {"user", "sku": part number, "group": guid, "state": "Error", "error":
                                 "CountViolation", "disabledPlans": [...]} -> 201: a group license in error
POST /_emulator/devices          {"user": id-or-upn, "count": 3} -> 201 {"ids": [...]}: Intune managed devices
GET  /_emulator/expected         a generated tenant's drift kind -> user ids (404 for a seeded tenant)
POST /_emulator/notify           {"userId": id-or-upn, "changeType": "updated"} -> {"deliveries": [{url, status}]}
POST /_emulator/lifecycle        {"subscriptionId": ..., "event": "reauthorizationRequired"} -> {"deliveries": [...]}
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from licensing.dev.tenant.model import GraphError, ServicePlan, guid
from licensing.dev.tenant.protocol import Context
from licensing.dev.tenant.seed import user_fields
from licensing.dev.tenant.views import ALL_PROPERTIES, render_user
from licensing.dev.tenant.webhooks import Delivery

AdminHandler = Callable[[Context, dict[str, Any]], web.Response | Awaitable[web.Response]]


def add_admin_routes(app: web.Application, ctx: Context) -> None:
    """Register the /_emulator endpoints for one tenant."""

    def wrap(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            try:
                body = await _json_object(request) | dict(request.match_info)  # path parameters win
                answer = handler(ctx, body)
                return await answer if inspect.isawaitable(answer) else answer
            except (ValueError, KeyError, TypeError, GraphError) as exc:
                message = exc.message if isinstance(exc, GraphError) else str(exc)
                return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)

        return endpoint

    app.router.add_get("/_emulator/health", wrap(_health))
    app.router.add_get("/_emulator/stats", wrap(_stats))
    app.router.add_post("/_emulator/faults", wrap(_faults))
    app.router.add_post("/_emulator/users", wrap(_create_user))
    app.router.add_post("/_emulator/reset-counters", wrap(_reset))
    app.router.add_post("/_emulator/plan-status", wrap(_plan_status))
    app.router.add_post("/_emulator/settings", wrap(_settings))
    app.router.add_post("/_emulator/notify", wrap(_notify))
    app.router.add_post("/_emulator/lifecycle", wrap(_lifecycle))
    app.router.add_post("/_emulator/delete-user", wrap(_delete_user))
    app.router.add_post("/_emulator/strictness", wrap(_strictness))
    app.router.add_post("/_emulator/activation", wrap(_activation))
    app.router.add_post("/_emulator/skus/{part}/plans", wrap(_add_plan))
    app.router.add_post("/_emulator/group-licenses", wrap(_group_license))
    app.router.add_post("/_emulator/devices", wrap(_devices))
    app.router.add_get("/_emulator/expected", wrap(_expected))


async def _json_object(request: web.Request) -> dict[str, Any]:
    body = await request.json() if request.can_read_body else {}
    if not isinstance(body, dict):
        raise TypeError("the body must be a JSON object")
    return body


def _health(ctx: Context, _: dict[str, Any]) -> web.Response:
    return web.json_response({"status": "ok", "tenantId": ctx.state.tenant_id, "users": len(ctx.state.users)})


def _stats(ctx: Context, _: dict[str, Any]) -> web.Response:
    state = ctx.state
    skus = [
        {
            "skuId": s.id,
            "skuPartNumber": s.part_number,
            "enabled": s.enabled,
            "consumed": state.consumed_units(s.id),
            "free": state.free_units(s.id),
        }
        for s in state.skus.values()
    ]
    stats = {
        "requests": dict(state.requests),
        "faulted": dict(state.faulted),
        "writes": dict(state.writes),
        "throttledWrites": state.throttled_writes,
        "writesInWindow": len(state.write_log),
        "slowAnswers": state.slow_answers,
        "users": len(state.users),
        "skus": skus,
        "faults": ctx.faults.as_dict(),
        "provisioningDelay": state.provisioning_delay,
        "subscriptions": len(state.subscriptions),
        "autoNotify": state.auto_notify,
        "strictness": state.strictness.as_dict(),
        "devices": len(state.managed_devices.devices),
    }
    return web.json_response(stats)


def _faults(ctx: Context, body: dict[str, Any]) -> web.Response:
    ctx.faults.update(body)
    return web.json_response(ctx.faults.as_dict())


def _create_user(ctx: Context, body: dict[str, Any]) -> web.Response:
    user = ctx.state.add_user(**user_fields(body, ctx.state.skus, now=ctx.state.clock()))
    ctx.state.writes["createUser"] += 1
    if ctx.state.auto_notify:
        ctx.webhooks.notify_in_background(user.id, "updated")  # Entra reports a new user as "updated"
    return web.json_response(render_user(ctx.state, user, ALL_PROPERTIES), status=201)


def _delete_user(ctx: Context, body: dict[str, Any]) -> web.Response:
    permanent = body.get("permanent", False)
    if not isinstance(permanent, bool):
        raise TypeError("permanent must be true or false")
    ctx.state.delete_user(str(body["user"]), permanent=permanent)  # notifies as the tenant's strictness says
    return web.Response(status=204)


def _strictness(ctx: Context, body: dict[str, Any]) -> web.Response:
    ctx.state.strictness.update(body)
    return web.json_response(ctx.state.strictness.as_dict())


def _activation(ctx: Context, body: dict[str, Any]) -> web.Response:
    if len({"require", "activate"} & set(body)) != 1:
        raise ValueError('give {"require": plan name} or {"activate": plan name}')
    if "require" in body:
        ctx.state.require_activation(str(body["require"]))
    else:
        ctx.state.activate(str(body["activate"]))
    return web.Response(status=204)


def _add_plan(ctx: Context, body: dict[str, Any]) -> web.Response:
    plan = ServicePlan(guid(body["id"]), str(body["name"]), str(body.get("appliesTo", "User")), str(body["service"]))
    sku = ctx.state.add_plan_to_sku(str(body["part"]), plan)
    return web.json_response({"skuId": sku.id, "servicePlans": [p.name for p in sku.plans]}, status=201)


def _group_license(ctx: Context, body: dict[str, Any]) -> web.Response:
    disabled = body.get("disabledPlans") or []
    if not isinstance(disabled, list):
        raise TypeError("disabledPlans must be a list of plan names or ids")
    assignment = ctx.state.add_group_license(
        str(body["user"]),
        str(body["sku"]),
        str(body["group"]),
        disabled_plans=[str(p) for p in disabled],
        state=str(body.get("state", "Error")),
        error=str(body.get("error", "CountViolation")),
    )
    return web.json_response({"skuId": assignment.sku_id, "state": assignment.state}, status=201)


def _devices(ctx: Context, body: dict[str, Any]) -> web.Response:
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("count must be a whole number >= 0")
    added = ctx.state.add_devices(str(body["user"]), count)
    return web.json_response({"ids": [d.id for d in added]}, status=201)


def _expected(ctx: Context, _: dict[str, Any]) -> web.Response:
    if not ctx.state.expected:
        message = "this tenant was not generated (python -m licensing.dev.tenant --generate N)"
        return web.json_response({"error": {"code": "NotFound", "message": message}}, status=404)
    return web.json_response(ctx.state.expected)


def _reset(ctx: Context, _: dict[str, Any]) -> web.Response:
    ctx.state.reset_counters()
    return web.Response(status=204)


def _plan_status(ctx: Context, body: dict[str, Any]) -> web.Response:
    status = body.get("status")
    if status is not None and not isinstance(status, str):
        raise ValueError("status must be a string or null")
    ctx.state.force_status(str(body["user"]), str(body["plan"]), status)
    return web.Response(status=204)


def _settings(ctx: Context, body: dict[str, Any]) -> web.Response:
    if not {"provisioning_delay", "auto_notify"} & set(body):
        raise ValueError("give provisioning_delay (seconds >= 0) and/or auto_notify (true or false)")
    delay = body.get("provisioning_delay", ctx.state.provisioning_delay)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ValueError("provisioning_delay must be a number of seconds >= 0")
    auto_notify = body.get("auto_notify", ctx.state.auto_notify)
    if not isinstance(auto_notify, bool):
        raise TypeError("auto_notify must be true or false")
    ctx.state.provisioning_delay, ctx.state.auto_notify = float(delay), auto_notify
    return web.json_response({"provisioning_delay": ctx.state.provisioning_delay, "auto_notify": auto_notify})


async def _notify(ctx: Context, body: dict[str, Any]) -> web.Response:
    deliveries = await ctx.webhooks.notify_user_changed(str(body["userId"]), str(body.get("changeType", "updated")))
    return _deliveries(deliveries)


async def _lifecycle(ctx: Context, body: dict[str, Any]) -> web.Response:
    event = str(body.get("event", "reauthorizationRequired"))
    return _deliveries(await ctx.webhooks.send_lifecycle(str(body["subscriptionId"]), event))


def _deliveries(deliveries: Sequence[Delivery]) -> web.Response:
    return web.json_response({"deliveries": [d._asdict() for d in deliveries]})
