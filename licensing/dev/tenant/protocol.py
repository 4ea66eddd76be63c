"""The shapes every Graph handler shares: request, response, context, Graph's error body and JSON helpers.

Independent of aiohttp so plain requests and $batch sub-requests are answered by the same handlers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from licensing.dev.tenant.faults import Faults
from licensing.dev.tenant.model import GraphError
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.webhooks import Webhooks

JSON_ODATA = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """One Graph request: ``path`` is below /v1.0 and percent-decoded; header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    base_url: str
    client_request_id: str


@dataclass(slots=True)
class GraphResponse:
    """Status, JSON body (None for 204) and extra headers of one Graph answer."""

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    """What every handler may consult: the directory, the injected faults and the outgoing webhooks."""

    state: TenantState
    faults: Faults
    webhooks: Webhooks


# A handler answers at once, or (subscriptions: a validation handshake first) asynchronously.
Handler = Callable[[Context, GraphRequest, Mapping[str, str]], GraphResponse | Awaitable[GraphResponse]]


def error_response(error: GraphError, request_id: str, client_request_id: str) -> GraphResponse:
    """Graph's error body for a refusal."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat()
    inner = {"date": now, "request-id": request_id, "client-request-id": client_request_id}
    body = {"error": {"code": error.code, "message": error.message, "innerError": inner}}
    headers = {"Content-Type": "application/json", "request-id": request_id, "client-request-id": client_request_id}
    return GraphResponse(error.status, body, error.headers | headers)


def ok(body: dict[str, Any], status: int = 200) -> GraphResponse:
    """A JSON answer with Graph's OData content type."""
    return GraphResponse(status, body, {"Content-Type": JSON_ODATA, "OData-Version": "4.0"})


def json_body(req: GraphRequest) -> dict[str, Any]:
    """The request's JSON object, or Graph's refusal of a payload that is not one."""
    try:
        parsed = json.loads(req.body or b"null")
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
            "valid JSON format.",
        )
    return parsed
