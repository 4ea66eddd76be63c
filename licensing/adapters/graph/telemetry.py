"""Graph calls as spans and throttling as a metric (part of the Graph adapter).

graph.call opens one CLIENT span per Graph call; the middleware below, innermost in the SDK's pipeline, names it
``graph METHOD /templated/path`` from the request it sees and counts every 429 - the ones the SDK's RetryHandler
retries never reach the adapter, so this is the only place they are visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import cast

import httpx
from kiota_http.middleware import BaseMiddleware
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from licensing.adapters import telemetry
from licensing.core.errors import LicensingError

# Path segments of the Graph endpoints this app calls; anything else (object ids, UPNs) becomes {id}, so a span
# name or metric attribute never carries who the call was about. A new endpoint shows as {id} until added here.
GRAPH_SEGMENTS = frozenset(
    {"users", "assignLicense", "licenseDetails", "subscribedSkus", "subscriptions", "reauthorize", "delta", "$batch"}
    | {"directory", "deletedItems", "deviceManagement", "managedDevices"}
)
API_VERSIONS = frozenset({"v1.0", "beta"})
DEFAULT_PORTS = {"https": 443, "http": 80}
RETRY_ATTEMPT = "Retry-Attempt"  # the header kiota's RetryHandler sets on a resent request
_current: ContextVar[Span | None] = ContextVar("graph_call", default=None)


def graph_route(path: str) -> str:
    """``/v1.0/users/ada@contoso.com/licenseDetails`` -> ``/users/{id}/licenseDetails``. Pure."""
    return _split(path)[1]


def graph_url(url: httpx.URL) -> str:
    """The request's URL with its route templated and no query: ``https://graph.microsoft.com/v1.0/users/{id}``."""
    base, route = _split(url.path)
    return f"{url.scheme}://{url.netloc.decode()}{base}{route}"


def _split(path: str) -> tuple[str, str]:
    """(the base path up to the API version, if any - an emulator's prefix too; the templated rest)."""
    parts = [p for p in path.split("/") if p]
    cut = max((i + 1 for i, p in enumerate(parts) if p in API_VERSIONS), default=0)
    base = "".join(f"/{p}" for p in parts[:cut])
    return base, "/" + "/".join(p if p in GRAPH_SEGMENTS else "{id}" for p in parts[cut:])


class GraphCall:
    """The span of one Graph call, as graph.call sees it."""

    def __init__(self, span: Span) -> None:
        self._span = span

    def failed(self, error: LicensingError) -> LicensingError:
        """Mark the call failed with our error kind (the message stays out: it names the user); returns error."""
        self._span.set_attribute("licensing.error", type(error).__name__)
        self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        return error


@contextmanager
def graph_call() -> Iterator[GraphCall]:
    """A span around one Graph call (the SDK's retries included); the middleware names it."""
    span = telemetry.tracer().start_span("graph", kind=SpanKind.CLIENT)
    token = _current.set(span)
    try:
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            yield GraphCall(span)
    finally:
        _current.reset(token)


class GraphCallTelemetry(BaseMiddleware):  # type: ignore[misc]  # kiota_http is untyped for mypy (skipped)
    """Innermost middleware: sees every attempt, so every 429 is counted, retried or not."""

    async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
        """Name the current Graph span, send, record the status; count a 429."""
        route = graph_route(request.url.path)
        span = _current.get()
        if span is not None:
            span.update_name(f"graph {request.method} {route}")
            url = request.url
            # url.full is the templated URL: Application Insights names an HTTP dependency after its path.
            attributes: dict[str, str | int] = {
                "http.request.method": request.method,
                "url.full": graph_url(url),
                "url.template": route,
                "url.scheme": url.scheme,
                "server.address": url.host,
                "server.port": url.port or DEFAULT_PORTS.get(url.scheme, 0),
                "licensing.graph.route": route,
                "http.request.resend_count": int(request.headers.get(RETRY_ATTEMPT) or 0),
            }
            span.set_attributes(attributes)
        response = cast(httpx.Response, await super().send(request, transport))
        if span is not None:
            span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code == 429:
            telemetry.throttled(method=request.method, route=route)
        return response
