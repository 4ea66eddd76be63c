"""HTTP-triggered functions: the signed HR webhook and Graph's change and lifecycle notifications.

Each handler imports its use case when first called, not at module level: every Flex Consumption cold start
imports function_app to index the functions, and the use cases pull in the Storage SDK, aiohttp and pydantic.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func

from licensing import composition
from licensing.core.errors import TransientError
from licensing.core.records import utcnow
from licensing.functions.traced import traced_function
from licensing.services.reply import Reply

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped
RETRY_SHORTLY = json.dumps({"error": "temporarily unavailable, retry shortly"})


def respond(reply: Reply) -> func.HttpResponse:
    """Reply -> HttpResponse (JSON bodies serialised, text passed through)."""
    body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
    return func.HttpResponse(body, status_code=reply.status, mimetype=reply.content_type, headers=dict(reply.headers))


def unavailable(exc: TransientError) -> func.HttpResponse:
    # Storage or Graph hiccup: the sender retries (HR systems and Graph do on 5xx; a person reloads the page).
    log.warning("HTTP request answered 503 (retry shortly): %s", exc.message)
    return func.HttpResponse(RETRY_SHORTLY, status_code=503, mimetype="application/json", headers={"Retry-After": "10"})


@bp.function_name("hr_events")
@bp.route(route="hr/events", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@traced_function
async def hr_events(req: func.HttpRequest) -> func.HttpResponse:
    """Joiner / mover / leaver events from the HR system, HMAC-signed; 202 once queued."""
    from licensing.services.hr_webhook import receive_hr_events  # noqa: PLC0415  # on first call: cold start

    try:
        return respond(await receive_hr_events(req.headers, req.get_body(), await composition.services()))
    except TransientError as exc:
        return unavailable(exc)


@bp.function_name("graph_notifications")
@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@traced_function
async def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    """Graph user change notifications (and the subscription validation handshake)."""
    from licensing.services.notifications import receive_notifications, validation_reply  # noqa: PLC0415  # cold start

    if (handshake := validation_reply(req.params)) is not None:
        return respond(handshake)  # before building anything: Graph allows 10 s, cold start included
    try:
        return respond(await receive_notifications(req.params, req.get_body(), await composition.services()))
    except TransientError as exc:
        return unavailable(exc)


@bp.function_name("graph_lifecycle")
@bp.route(route="graph/lifecycle", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@traced_function
async def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    """Graph lifecycle notifications: reauthorizationRequired, subscriptionRemoved, missed."""
    from licensing.services.notifications import validation_reply  # noqa: PLC0415  # on first call: cold start

    if (handshake := validation_reply(req.params)) is not None:
        return respond(handshake)  # before loading the Graph SDK, as above
    from licensing.services.subscriptions import receive_lifecycle  # noqa: PLC0415

    try:
        return respond(await receive_lifecycle(req.get_body(), await composition.services(), now=utcnow()))
    except TransientError as exc:
        return unavailable(exc)
