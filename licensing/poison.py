"""Poison handler: a message the queue gave up on is recorded with who, what and the last error."""

from __future__ import annotations

import logging

from licensing.composition import Services
from licensing.messages import peek_identity
from licensing.recording import Handled, record
from licensing.records import REQUEST_LEVEL, UNIDENTIFIED

log = logging.getLogger(__name__)


async def record_poison(body: str, services: Services, *, queue: str, message_id: str = "") -> Handled:
    """Record a poisoned message as failed, with the last error any delivery noted. Never raises on bad input."""
    user, request_id = peek_identity(body)
    user_key = user.lower() if user else UNIDENTIFIED
    last = await services.storage.last_error(user_key, request_id) if (user and request_id) else None
    why = last.detail if last else "no error was recorded (the worker may have crashed or timed out)"
    reason = f"gave up after the queue's maximum deliveries on {queue}: {why}"
    await record(
        services,
        user_key=user_key,
        upn=user or "",
        outcome="failed",
        kind="MessagePoisoned",
        reason=f"{reason} | message {message_id}: {body[:300]!r}",
        request_id=request_id or message_id,
        source=queue,
        sku=REQUEST_LEVEL if user else f"message-{message_id}",
    )
    log.warning("poison message %s on %s for %s (request %s)", message_id, queue, user_key, request_id)
    return Handled("failed", reason)
