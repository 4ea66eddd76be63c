"""The one recorder: a use case's outcome becomes its status row, its audit event and its counter. And retries."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from licensing.adapters import telemetry
from licensing.core.messages import OnboardRequest, VerifyRequest, peek_identity
from licensing.core.model import UserFacts
from licensing.core.outcomes import Decided, Noted, Subject
from licensing.core.records import REQUEST_LEVEL, UNIDENTIFIED
from licensing.services.context import Services

MAX_BACKOFF_SECONDS = 6 * 3600
LEASE_WAIT_SECONDS = 3  # how soon a request or check that found the user busy comes back (with jitter)


@dataclass(frozen=True, slots=True)
class Handled:
    """How a message ended: the outcome word and a reason for the log."""

    outcome: str
    reason: str


def backoff(base: int, attempt: int, *, cap: int = MAX_BACKOFF_SECONDS) -> int:
    """Exponential backoff with ±20 % jitter so a crowd of retries does not return at one instant."""
    delay = min(base * 2 ** max(attempt - 1, 0), cap)
    return max(int(delay * random.uniform(0.8, 1.2)), 0) if delay else 0  # noqa: S311  # jitter, not crypto


def about(request: OnboardRequest | VerifyRequest, user: UserFacts | None = None) -> Subject:
    """The subject of an outcome for this request: the user once known (object id), else as the request names them."""
    if isinstance(request, VerifyRequest):
        return Subject(
            request.user_id, request.user_principal_name, request.request_id, request.source, request.attempt + 1
        )
    if user is not None:
        return Subject(user.id, user.user_principal_name, request.request_id, request.source, request.attempt + 1)
    return Subject(request.user.lower(), request.user, request.request_id, request.source, request.attempt + 1)


async def record(services: Services, what: Decided | Noted) -> None:
    """The one way an outcome is kept: its status row (under the row's ETag), its audit event, its counter.

    The status goes first: an audit event never claims a state the table does not show.
    """
    now = services.clock()
    if isinstance(what, Decided):
        await services.storage.put_status(what.status_row(now))
    await services.storage.append_event(what.audit_event(now))
    if isinstance(what, Decided):
        telemetry.recorded(kind=what.kind, sku=what.sku)


async def reject_unreadable(services: Services, body: str, reason: str, *, message_id: str, source: str) -> None:
    """Record a message we cannot parse: who (as far as it says), what (an excerpt) and why."""
    user, request_id = peek_identity(body)
    subject = Subject(user.lower() if user else UNIDENTIFIED, user or "", request_id or message_id, source)
    detail = f"{reason} | message {message_id}: {body[:300]!r}"
    sku = REQUEST_LEVEL if user else f"message-{message_id}"
    await record(services, Decided(subject, "rejected", "RequestRejected", detail, sku=sku))


async def note_failed_attempt(services: Services, subject: Subject, *, error: BaseException, delivery: int) -> None:
    """Remember why a delivery failed, so the poison handler can say why it gave up."""
    detail = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
    await record(services, Noted(subject, "AttemptFailed", f"delivery {delivery}: {detail}"))


async def come_back(services: Services, queue: str, message: OnboardRequest | VerifyRequest, why: str) -> Handled:
    """The user's lease is another worker's (held now, or taken from us while we stalled): send the message to
    ``queue`` again in a few seconds, unchanged (attempt too), so it finds the result instead of writing twice."""
    delay = backoff(LEASE_WAIT_SECONDS, 1)
    await services.storage.send(queue, message.model_dump(mode="json", by_alias=True), delay_seconds=delay)
    return Handled("deferred", f"{why}; again in {delay} s")


def retry_payload(message: Any, **changes: Any) -> dict[str, Any]:  # noqa: ANN401  # any pydantic message
    """The message as JSON with its attempt counter advanced (and other fields changed)."""
    data: dict[str, Any] = message.model_dump(mode="json", by_alias=True)
    data["attempt"] = data.get("attempt", 0) + 1
    data.update(changes)
    return data
