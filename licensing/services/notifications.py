"""Graph change notifications for users: validation handshake, clientState check, one request per user."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.services.context import Services
from licensing.services.reply import Reply

log = logging.getLogger(__name__)
MAX_NOTIFICATION_BYTES = 4 * 1024 * 1024
mismatched_client_state = 0  # per worker, for the log line: mismatches are dropped, never acted on


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def validation_reply(params: Mapping[str, str]) -> Reply | None:
    """Graph's handshake: echo ?validationToken as text/plain within 10 s (no body parsing, no storage)."""
    token = params.get("validationToken")
    return Reply(200, token, "text/plain") if token is not None else None


def user_changes(payload: Any, client_state: str | None) -> tuple[list[str], int, int]:  # noqa: ANN401  # JSON
    """(user ids to re-evaluate, items with a wrong clientState, items ignored). Pure."""
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise TypeError('expected {"value": [...]}')
    users: list[str] = []
    mismatched = ignored = 0
    for item in items:
        if not isinstance(item, dict):
            ignored += 1
            continue
        given = item.get("clientState")
        if not client_state or not isinstance(given, str) or not same_secret(given, client_state):
            mismatched += 1
            continue
        data = item.get("resourceData")
        user_id = (data.get("id") if isinstance(data, dict) else None) or str(item.get("resource", "")).rpartition("/")[
            2
        ]
        # users have no "created" change type: a new user arrives as "updated", and onboarding decides
        # from the policy whether it lacks a license. "deleted" users free their licenses with them.
        if item.get("changeType") in {"updated", "created"} and isinstance(user_id, str) and user_id:
            users.append(user_id)
        else:
            ignored += 1
    return list(dict.fromkeys(users)), mismatched, ignored


async def receive_notifications(params: Mapping[str, str], body: bytes, services: Services) -> Reply:
    """Enqueue an onboarding request per changed user and answer 202 (Graph wants an answer within 3 s)."""
    global mismatched_client_state  # noqa: PLW0603  # a process-wide counter, like a metric
    if (handshake := validation_reply(params)) is not None:
        return handshake
    if len(body) > MAX_NOTIFICATION_BYTES:
        return Reply(413, {"error": "notification batch too large"})
    try:
        users, mismatched, ignored = user_changes(json.loads(body), services.settings.graph_client_state)
    except (ValueError, TypeError) as exc:
        return Reply(400, {"error": f"not a Graph notification: {exc}"})
    if mismatched:
        mismatched_client_state += mismatched
        log.warning(
            "ignored %d notification(s) with a wrong clientState (%d since start)", mismatched, mismatched_client_state
        )
    await asyncio.gather(
        *(
            services.storage.send(
                LICENSE_REQUESTS_QUEUE,
                {"user": u, "source": "graph", "requestId": f"graph-{u}-{uuid.uuid4().hex[:12]}"},
            )
            for u in users
        )
    )
    return Reply(202, {"queued": len(users), "clientStateMismatches": mismatched, "ignored": ignored})
