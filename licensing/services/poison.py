"""Poison handler: a message the queue gave up on is recorded with who, what and the last error."""

from __future__ import annotations

import logging

from licensing.core.errors import TransientError
from licensing.core.messages import peek_identity
from licensing.core.outcomes import Decided, Subject
from licensing.core.records import REQUEST_LEVEL, UNIDENTIFIED
from licensing.services.context import Services
from licensing.services.recording import Handled, record

log = logging.getLogger(__name__)


async def record_poison(body: str, services: Services, *, queue: str, message_id: str = "") -> Handled:
    """Record a poisoned message as failed, with the last error any delivery noted.

    Never raises on what the message holds: one that cannot even be read for a user (nested too deep, a number too
    long for Python, not JSON) is recorded as unreadable under its message id. Only storage being unavailable
    raises (TransientError): the queue then redelivers the poison message, so the record is not lost either.
    """
    try:
        user, request_id = peek_identity(body)
    except (RecursionError, ValueError, MemoryError) as exc:
        user, request_id = None, None
        why = f"the message cannot be read ({type(exc).__name__})"
    else:
        why = ""
    try:
        return await _record(body, services, queue=queue, message_id=message_id, who=(user, request_id), why=why)
    except TransientError:
        raise
    except Exception as exc:  # a bug or a hostile value in what we read: still leave a record, never a crash loop
        log.exception("recording poison message %s failed; recording it as unreadable", message_id)
        why = f"the message could not be recorded as it stands ({type(exc).__name__})"
        return await _record(body, services, queue=queue, message_id=message_id, who=(None, None), why=why)


async def _record(
    body: str, services: Services, *, queue: str, message_id: str, who: tuple[str | None, str | None], why: str
) -> Handled:
    user, request_id = who
    user_key = user.lower() if user else UNIDENTIFIED
    if not why:
        last = await services.storage.last_error(user_key, request_id) if (user and request_id) else None
        why = last.detail if last else "no error was recorded (the worker may have crashed or timed out)"
    reason = f"gave up after the queue's maximum deliveries on {queue}: {why}"
    subject = Subject(user_key, user or "", request_id or message_id, queue)
    detail = f"{reason} | message {message_id}: {body[:300]!r}"
    sku = REQUEST_LEVEL if user else f"message-{message_id}"
    await record(services, Decided(subject, "failed", "MessagePoisoned", detail, sku=sku))
    log.warning("poison message %s on %s for %s (request %s)", message_id, queue, user_key, request_id)
    return Handled("failed", reason)
