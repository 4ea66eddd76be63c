"""POST /$batch: Graph JSON batching, each sub-request answered by the same dispatch as a plain request.

The batch itself answers 200 once its payload parses; every sub-request is counted under its own
route, draws its own fault (so one can come back 429 with Retry-After in its headers while the batch
is 200), and is run in order. ``dependsOn`` on a failed request gives 424. With
``strictness.shuffle_batch`` the answers come back shuffled, as Graph allows itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from licensing.dev.tenant.graph_api import dispatch
from licensing.dev.tenant.model import GraphError, new_id
from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse, error_response

MAX_REQUESTS = 20


async def handle_batch(ctx: Context, req: GraphRequest) -> GraphResponse:
    """Answer a $batch envelope: 400 for a malformed one, else 200 with one response per sub-request."""
    request_id = new_id()
    ctx.state.requests["POST /$batch"] += 1
    ids = {"request-id": request_id, "client-request-id": req.client_request_id}
    try:
        items = _requests(req)
    except GraphError as exc:
        return error_response(exc, request_id, req.client_request_id)
    statuses: dict[str, int] = {}
    answers = []
    for item in items:
        answer = await _answer(ctx, req, item, statuses)
        statuses[str(item["id"])] = answer.status
        entry: dict[str, Any] = {"id": str(item["id"]), "status": answer.status, "headers": _sub_headers(answer)}
        if answer.body is not None:
            entry["body"] = answer.body
        answers.append(entry)
    # https://learn.microsoft.com/graph/json-batching: answers may come back in any order (match them by id).
    answers = ctx.state.strictness.batch_order(answers)
    return GraphResponse(200, {"responses": answers}, {"Content-Type": "application/json"} | ids)


async def _answer(
    ctx: Context, batch: GraphRequest, item: Mapping[str, Any], statuses: Mapping[str, int]
) -> GraphResponse:
    depends_on = [str(d) for d in item.get("dependsOn") or []]
    if any(statuses.get(d, 424) >= 400 for d in depends_on):
        failed = GraphError(424, "FailedDependency", "A request this request depends on failed.")
        return error_response(failed, new_id(), batch.client_request_id)
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    parts = urlsplit(_relative(str(item["url"])))
    sub = GraphRequest(
        method=str(item["method"]).upper(),
        path=unquote(parts.path),
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        body=_body(item.get("body")),
        base_url=batch.base_url,
        client_request_id=headers.get("client-request-id", batch.client_request_id),
    )
    return await dispatch(ctx, sub)


def _sub_headers(answer: GraphResponse) -> dict[str, str]:
    # Sub-responses carry their own headers (Retry-After on a throttled one) but not the envelope's ids.
    headers = {k: v for k, v in answer.headers.items() if k not in {"request-id", "client-request-id"}}
    return {"Cache-Control": "no-cache"} | headers


def _requests(req: GraphRequest) -> list[Mapping[str, Any]]:
    try:
        payload = json.loads(req.body or b"null")
    except ValueError:
        payload = None
    items = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    if not 1 <= len(items) <= MAX_REQUESTS:
        raise GraphError(
            400, "BadRequest", f"Number of requests in a batch must be between 1 and {MAX_REQUESTS}; got {len(items)}."
        )
    for item in items:
        if not all(item.get(k) for k in ("id", "method", "url")):
            raise GraphError(400, "BadRequest", "Each batch request needs an id, a method and a url.")
        if "$batch" in str(item["url"]):
            raise GraphError(400, "BadRequest", "Nested batch requests are not supported.")
    ids = [str(i["id"]).lower() for i in items]  # ids are compared case-insensitively
    if len(set(ids)) != len(ids):
        raise GraphError(400, "BadRequest", "Batch request ids must be unique.")
    return items


def _relative(url: str) -> str:
    """A sub-request url below /v1.0: "/users/x", "users/x" or an absolute Graph URL."""
    if "://" in url:
        path = urlsplit(url)
        url = path.path.split("/v1.0", 1)[-1] + (f"?{path.query}" if path.query else "")
    return url if url.startswith("/") else f"/{url}"


def _body(body: Any) -> bytes:  # noqa: ANN401  # a JSON object, or base64 text for binary bodies
    if body is None:
        return b""
    if isinstance(body, str):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            return body.encode()
    return json.dumps(body).encode()
