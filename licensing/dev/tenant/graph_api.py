"""The Graph v1.0 endpoints, independent of aiohttp so plain requests and $batch sub-requests share them.

A request is routed by method and path template, counted under ``"METHOD /template"``, given its
injected fault if it draws one, refused with 429 if it is an identity write beyond the write budget
(``WRITE_ROUTES``), and otherwise answered by its handler. GraphErrors become Graph's error body:
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from licensing.dev.tenant.deleted_items_api import get_deleted_item
from licensing.dev.tenant.delta import users_delta
from licensing.dev.tenant.devices_api import list_managed_devices
from licensing.dev.tenant.faults import Fault
from licensing.dev.tenant.model import GraphError, new_id
from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse, Handler, error_response, json_body, ok
from licensing.dev.tenant.query import compile_filter, offset_of, parse_top, skiptoken
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.subscriptions_api import (
    create_subscription,
    delete_subscription,
    get_subscription,
    list_subscriptions,
    reauthorize_subscription,
    update_subscription,
)
from licensing.dev.tenant.views import parse_select, render_sku, render_user, users_context

__all__ = ["WRITE_ROUTES", "Context", "GraphRequest", "GraphResponse", "dispatch", "error_response", "route"]


# Identity writes: what Faults.write_budget counts (plain or inside $batch).
WRITE_ROUTES = frozenset({"POST /users/{id}/assignLicense", "PATCH /users/{id}", "DELETE /users/{id}"})
# /users('$adm@contoso.com'): the key in parentheses and single quotes ('' for a quote), the only way to
# address a user whose UPN starts with $ (https://learn.microsoft.com/graph/api/user-get, note).
_QUOTED_USER = re.compile(r"^/users\('((?:[^']|'')*)'\)(?=/|$)")


def _throttled(state: TenantState) -> GraphError:
    return GraphError(
        429,
        "TooManyRequests",
        f"Too many requests from Identifier:{state.tenant_id} under category:throttle.aad.ags. Please try again later.",
    )


def _fault_error(fault: Fault, state: TenantState) -> GraphError:
    if fault is Fault.THROTTLED:
        return _throttled(state)
    return GraphError(503, "serviceNotAvailable", "The service is not available. Try the request again after a delay.")


def list_skus(ctx: Context, req: GraphRequest, _: Mapping[str, str]) -> GraphResponse:
    """GET /subscribedSkus (no $filter: Graph has none for this collection)."""
    if "$filter" in req.query:
        raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
    value = [render_sku(ctx.state, sku) for sku in ctx.state.skus.values()]
    return ok({"@odata.context": f"{req.base_url}/$metadata#subscribedSkus", "value": value})


def list_users(ctx: Context, req: GraphRequest, _: Mapping[str, str]) -> GraphResponse:
    """GET /users with $select, $filter, $top, $skiptoken paging and $count (needs ConsistencyLevel).

    A page costs the users it scans from the $skiptoken's position on, not the size of the tenant
    ($count, when asked for, is the one full pass).
    """
    select = parse_select(req.query.get("$select"))
    top = parse_top(req.query.get("$top"))
    wants_count = req.query.get("$count", "").lower() == "true"
    if wants_count and req.headers.get("consistencylevel", "").lower() != "eventual":
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    raw_filter = req.query.get("$filter")
    keep = compile_filter(raw_filter) if raw_filter is not None and raw_filter.strip() else None
    start = offset_of(req.query.get("$skiptoken"))
    page, next_position = ctx.state.page_of_users(start, top, keep)
    body: dict[str, Any] = {"@odata.context": users_context(req.base_url, select, entity=False)}
    if wants_count:
        body["@odata.count"] = sum(1 for u in ctx.state.users.values() if keep is None or keep(u))
    if next_position is not None:
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"} | {"$skiptoken": skiptoken(next_position)}
        body["@odata.nextLink"] = f"{req.base_url}/users?{urlencode(params, quote_via=quote, safe='$,')}"
    body["value"] = [render_user(ctx.state, u, select) for u in page]
    return ok(body)


def get_user(ctx: Context, req: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """GET /users/{id | userPrincipalName} with $select (Graph's default property set without it)."""
    select = parse_select(req.query.get("$select"))
    user = ctx.state.user(params["id"])
    body = {"@odata.context": users_context(req.base_url, select, entity=True)}
    return ok(body | render_user(ctx.state, user, select))


def patch_user(ctx: Context, req: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """PATCH /users/{id}: 204 No Content, and a change notification soon after (see _notify_write)."""
    before = ctx.state.sequence
    user = ctx.state.set_user(params["id"], json_body(req))
    _notify_write(ctx, user.id, changed=ctx.state.sequence != before, auto=True)
    return GraphResponse(204, None)


def delete_user(ctx: Context, _: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """DELETE /users/{id}: 204; a soft delete (https://learn.microsoft.com/graph/api/user-delete)."""
    ctx.state.delete_user(params["id"])
    return GraphResponse(204, None)


def assign_license(ctx: Context, req: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """POST /users/{id}/assignLicense: 200 with the user (default property set)."""
    body = json_body(req)
    before = ctx.state.sequence
    user = ctx.state.assign_license(params["id"], body.get("addLicenses"), body.get("removeLicenses"))
    _notify_write(ctx, user.id, changed=ctx.state.sequence != before, auto=False)
    context = {"@odata.context": users_context(req.base_url, None, entity=True)}
    return ok(context | render_user(ctx.state, user, None))


def _notify_write(ctx: Context, user_id: str, *, changed: bool, auto: bool) -> None:
    """The app's own write notifies subscribers like anyone's (``strictness.notify_own_writes``, when it
    changed the user: https://learn.microsoft.com/graph/change-notifications-overview); the lenient
    profile notifies PATCHes only, and only with ``auto_notify``."""
    if (auto and ctx.state.auto_notify) or (changed and ctx.state.strictness.notify_own_writes):
        ctx.webhooks.notify_in_background(user_id, "updated")


def license_details(ctx: Context, req: GraphRequest, params: Mapping[str, str]) -> GraphResponse:
    """GET /users/{id}/licenseDetails, or 403 as for an app-only caller: the permissions table of
    https://learn.microsoft.com/graph/api/user-list-licensedetails says Application "Not supported"."""
    if ctx.faults.license_details_forbidden or ctx.state.strictness.license_details_app_only_refused:
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    user = ctx.state.user(params["id"])
    context = f"{req.base_url}/$metadata#users('{user.id}')/licenseDetails"
    return ok({"@odata.context": context, "value": ctx.state.license_details(user)})


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/subscribedSkus", list_skus),
    ("GET", "/users", list_users),
    ("GET", "/users/delta", users_delta),
    ("GET", "/users/{id}", get_user),
    ("PATCH", "/users/{id}", patch_user),
    ("DELETE", "/users/{id}", delete_user),
    ("POST", "/users/{id}/assignLicense", assign_license),
    ("GET", "/users/{id}/licenseDetails", license_details),
    ("GET", "/directory/deletedItems/{id}", get_deleted_item),
    ("GET", "/deviceManagement/managedDevices", list_managed_devices),
    ("POST", "/subscriptions", create_subscription),
    ("GET", "/subscriptions", list_subscriptions),
    ("GET", "/subscriptions/{id}", get_subscription),
    ("PATCH", "/subscriptions/{id}", update_subscription),
    ("DELETE", "/subscriptions/{id}", delete_subscription),
    ("POST", "/subscriptions/{id}/reauthorize", reauthorize_subscription),
)
# The delta function as the SDK spells it (``delta()``, ``microsoft.graph.delta()``) routes as ``/delta``.
_FUNCTION_CALL = re.compile(r"/(?:microsoft\.graph\.)?delta(?:\(\))?(?=/|$)")
_COMPILED = [
    (method, template, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), handler)
    for method, template, handler in ROUTES
]


def route(method: str, path: str) -> tuple[str, Handler, dict[str, str]]:
    """The route template, handler and path parameters for a request, or Graph's refusal."""
    allowed = False
    path = _FUNCTION_CALL.sub("/delta", path)
    for route_method, template, pattern, handler in _COMPILED:
        found = pattern.match(path.rstrip("/") or "/")
        if found and route_method == method.upper():
            return template, handler, found.groupdict()
        allowed = allowed or bool(found)
    if allowed:
        raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
    segment = next((s for s in reversed(path.split("/")) if s), "")  # the segment no route knows
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def unquote_user(path: str) -> tuple[str, bool]:
    """``/users('key')/...`` as ``/users/key/...``, and whether the key came in that quoted form."""
    found = _QUOTED_USER.match(path)
    if found is None:
        return path, False
    return "/users/" + found.group(1).replace("''", "'") + path[found.end() :], True


def _check_user_key(ctx: Context, template: str, params: Mapping[str, str], *, quoted: bool) -> None:
    """Refuse ``/users/$x@...``: Graph reads a segment starting with $ as a system query segment, so such a
    UPN must be quoted (https://learn.microsoft.com/graph/api/user-get). The wording is our guess."""
    key = params.get("id", "")
    strict = ctx.state.strictness.dollar_upn_needs_quotes
    if strict and template.startswith("/users/{id}") and key.startswith("$") and not quoted:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{key}'.")


async def dispatch(ctx: Context, req: GraphRequest) -> GraphResponse:
    """Answer one Graph request (never raises): count it, apply its fault, run its handler."""
    request_id = new_id()
    path, quoted = unquote_user(req.path)
    try:
        template, handler, params = route(req.method, path)
    except GraphError as exc:
        ctx.state.requests[f"{req.method.upper()} (no route)"] += 1
        response = error_response(exc, request_id, req.client_request_id)
    else:
        key = f"{req.method.upper()} {template}"
        ctx.state.requests[key] += 1
        fault = ctx.faults.draw()
        retry_after: int | None = None
        try:
            if fault is not None:
                ctx.state.faulted[key] += 1
                retry_after = ctx.faults.retry_after
                raise _fault_error(fault, ctx.state)
            _check_user_key(ctx, template, params, quoted=quoted)
            if key in WRITE_ROUTES:
                retry_after = ctx.state.admit_write(ctx.faults.write_budget, ctx.faults.write_window)
                if retry_after is not None:
                    ctx.state.faulted[key] += 1
                    raise _throttled(ctx.state)
            answer = handler(ctx, req, params)
            response = answer if isinstance(answer, GraphResponse) else await answer
        except GraphError as exc:
            response = error_response(exc, request_id, req.client_request_id)
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
    response.headers |= {"request-id": request_id, "client-request-id": req.client_request_id}
    return response
