"""The status page: GET /api/status, seats, outcomes and their history, sweeps, failures, health and the forecast.

The renderer (Jinja2) and the snapshot use case are imported when the page is first asked for, not at module
level: every Flex Consumption cold start imports function_app to index the functions.
"""

from __future__ import annotations

import azure.functions as func

from licensing import composition
from licensing.core.errors import TransientError
from licensing.functions.http import respond, unavailable
from licensing.functions.traced import traced_function
from licensing.services.reply import Reply

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped
# Sent as headers, not only as the template's <meta> CSP: frame-ancestors works only in a header (no framing of a
# page full of UPNs), and no proxy or browser may keep a copy of it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@bp.function_name("status_page")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@traced_function
async def status_page(req: func.HttpRequest) -> func.HttpResponse:
    """An HTML page (or ``?format=json``) from Graph's catalog, the status counters, the sweep runs, the queues and
    the forecast: the same handful of reads whatever the number of users."""
    from licensing.functions.status_render import page, requested_format  # noqa: PLC0415  # on first call: cold start
    from licensing.services.overview import take_snapshot  # noqa: PLC0415

    wanted = requested_format(req.params)
    if isinstance(wanted, Reply):
        return _secured(respond(wanted))  # before building anything: a typo needs no storage
    try:
        snapshot = await take_snapshot(await composition.services())
    except TransientError as exc:
        return _secured(unavailable(exc))
    return _secured(respond(page(snapshot, wanted)))


def _secured(response: func.HttpResponse) -> func.HttpResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
