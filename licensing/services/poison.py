"""Poison handler: a message the queue gave up on is recorded with who, what and the last error."""

from __future__ import annotations

import logging

from licensing.core.messages import peek_identity
from licensing.core.outcomes import Decided, Subject
from licensing.core.records import REQUEST_LEVEL, UNIDENTIFIED
from licensing.services.context import Services
from licensing.services.recording import Handled, record

log = logging.getLogger(__name__)


async def record_poison(body: str, services: Services, *, queue: str, message_id: str = "") -> Handled:
    """Record a poisoned message as failed, with the last error any delivery noted. Never raises on bad input."""
    user, request_id = peek_identity(body)
    user_key = user.lower() if user else UNIDENTIFIED
    last = await services.storage.last_error(user_key, request_id) if (user and request_id) else None
    why = last.detail if last else "no error was recorded (the worker may have crashed or timed out)"
    reason = f"gave up after the queue's maximum deliveries on {queue}: {why}"
    subject = Subject(user_key, user or "", request_id or message_id, queue)
    detail = f"{reason} | message {message_id}: {body[:300]!r}"
    sku = REQUEST_LEVEL if user else f"message-{message_id}"
    await record(services, Decided(subject, "failed", "MessagePoisoned", detail, sku=sku))
    log.warning("poison message %s on %s for %s (request %s)", message_id, queue, user_key, request_id)
    return Handled("failed", reason)
