"""POST /api/hr/events: signed HR events become license-requests messages, once each, acked fast.

Signed with our X-Signature scheme or with Standard Webhooks (core/standard_webhooks.py); under the latter the
webhook-id is processed once as well as each eventId.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from licensing.adapters.storage.account import HR_EVENTS_TABLE, transient
from licensing.core.errors import TransientError
from licensing.core.hr_events import HrEvent, PayloadInvalid, dispatch_for, parse_events
from licensing.core.signing import SignatureRejected
from licensing.core.standard_webhooks import SecretUnusable, verify_request
from licensing.services.context import Services
from licensing.services.forecast import WARN_TIMEOUT_SECONDS, warn_scheduled_hires
from licensing.services.hr_claims import claim, event_claim_key, release, webhook_claim_key
from licensing.services.reply import Reply, error
from licensing.services.scheduling import cancel_held, dispatch
from licensing.settings import SECRET_SETTINGS

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024  # 500 events of ~1 KiB fit easily
CONCURRENCY = 32  # storage round trips in flight per request: a 500-event batch acks in well under a second
DEADLINE_SECONDS = 8.0  # answer before HR gives up (10 s is common); what is not done by then is retried by HR
RELEASE_SECONDS = 1.0  # how long a failed delivery tries to give its claim back
RETRY_AFTER_SECONDS = 5


async def receive_hr_events(
    headers: Mapping[str, str], body: bytes, services: Services, *, now: float | None = None
) -> Reply:
    """Check type, size and signature before parsing; nothing is enqueued unless all three pass."""
    try:
        webhook_id, events = _admit(
            headers, body, services.settings.hr_webhook_secrets, now=time.time() if now is None else now
        )
    except _Refused as refused:
        return refused.reply
    if webhook_id is None:
        return _answer(await _accept_all(events, services, until=time.monotonic() + DEADLINE_SECONDS))
    return await _deliver_once(webhook_id, events, services)


class _Refused(Exception):
    """A request refused before any storage is touched, with its 4xx/503 answer."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _admit(
    headers: Mapping[str, str], body: bytes, secrets: tuple[str, ...], *, now: float
) -> tuple[str | None, list[HrEvent]]:
    """The webhook-id (Standard Webhooks; None for X-Signature) and the events, or _Refused with the answer."""
    lowered = {k.lower(): v for k, v in headers.items()}
    media_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise _Refused(error(415, f"Content-Type must be application/json, not {media_type or 'missing'}"))
    if len(body) > MAX_BODY_BYTES:
        limit = f"the limit is {MAX_BODY_BYTES:,} (send up to 500 events)"
        raise _Refused(error(413, f"body is {len(body):,} bytes; {limit}"))
    if not secrets:
        log.error("HR webhook called but HR_WEBHOOK_SECRET is not set")
        raise _Refused(error(503, "the webhook is not configured yet (HR_WEBHOOK_SECRET); retry later"))
    # Empty settings are left out of the tuple, so one secret is "the" secret, whichever setting holds it.
    names = SECRET_SETTINGS[:2] if len(secrets) == 2 else ("HR_WEBHOOK_SECRET",) * len(secrets)
    try:
        webhook_id = verify_request(lowered, body, secrets=secrets, secret_names=names, now=now)
        return webhook_id, parse_events(body)
    except SecretUnusable as exc:
        log.error("HR webhook: %s", exc)  # noqa: TRY400  # names the setting, never its value; no traceback wanted
        raise _Refused(error(503, f"the webhook is misconfigured: {exc}; retry later")) from None
    except SignatureRejected as exc:
        log.warning("HR webhook signature rejected: %s", exc)
        raise _Refused(error(401, f"signature rejected: {exc}")) from None
    except PayloadInvalid as exc:
        raise _Refused(error(400, "invalid payload", problems=exc.problems)) from None


async def _deliver_once(webhook_id: str, events: list[HrEvent], services: Services) -> Reply:
    """Standard Webhooks: a webhook-id is processed once, whatever its body says the next time.

    Its claim follows the eventId rules: a re-delivery is a duplicate only once every event of the first one was
    dispatched (or already known); while it runs it is a 503, and when an event must be retried the claim is given
    back so the retry goes through again (its dispatched events are then eventId duplicates).
    """
    table = services.storage.table(HR_EVENTS_TABLE)
    key = webhook_claim_key(webhook_id)
    until = time.monotonic() + DEADLINE_SECONDS
    try:
        claiming = claim(
            table, key, services.clock(), {"Type": "webhook-id", "WebhookId": webhook_id, "Events": len(events)}
        )
        verdict = await asyncio.wait_for(claiming, timeout=DEADLINE_SECONDS / 2)
    except (TransientError, TimeoutError):
        verdict = "retry"
    if verdict != "ours":
        log.info("HR webhook-id %s: %s (%d event(s))", webhook_id, verdict, len(events))
        return _answer([{"eventId": e.event_id, "status": verdict} for e in events])
    results = await _accept_all(events, services, until=until)
    done = all(r["status"] != "retry" for r in results)
    try:
        mark = table.update_entity({**key, "Status": "dispatched" if done else "released"})
        await asyncio.wait_for(asyncio.shield(mark), timeout=RELEASE_SECONDS)
    except Exception as exc:  # its events are safe by eventId; a stale claim is taken over later
        log.warning("HR webhook-id %s not marked (%s)", webhook_id, type(exc).__name__)
    return _answer(results)


async def _accept_all(events: list[HrEvent], services: Services, *, until: float) -> list[dict[str, Any]]:
    """Each event's outcome; what is not done by ``until`` (monotonic) is cancelled and answered "retry"."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(event: HrEvent) -> dict[str, Any]:
        async with gate:
            return await _accept(event, services)

    tasks = [asyncio.ensure_future(one(e)) for e in events]
    # HR clients give up after seconds, and the storage SDK retries a dead service for over a minute: answer
    # within the deadline, and let HR's retry finish what did not (claims not dispatched are never duplicates).
    _, late = await asyncio.wait(tasks, timeout=max(until - time.monotonic(), 0.1))
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)  # each gives its claim back (at most RELEASE_SECONDS) before we answer
    results = [_outcome(task, event) for task, event in zip(tasks, events, strict=True)]
    if any(r["status"] in {"delayed", "held"} for r in results):
        # a hire scheduled ahead may make a SKU run out: warn now, within what is left of the deadline (never raises)
        await warn_scheduled_hires(services, within=min(WARN_TIMEOUT_SECONDS, max(until - time.monotonic(), 0.1)))
    return results


def _answer(results: list[dict[str, Any]]) -> Reply:
    """202 when every event is queued or known; else 503 naming the events to retry (nothing acked is lost)."""
    accepted = [r for r in results if r["status"] not in {"duplicate", "retry"}]
    duplicates = [r["eventId"] for r in results if r["status"] == "duplicate"]
    retry = [r["eventId"] for r in results if r["status"] == "retry"]
    log.info("HR webhook: %d event(s), %d duplicate(s), %d to retry", len(results), len(duplicates), len(retry))
    answer = {
        "accepted": [r["eventId"] for r in accepted],
        "duplicates": duplicates,
        "scheduled": [r for r in accepted if r["status"] != "now"],
    }
    if not retry:
        return Reply(202, answer)
    # Nothing is lost by answering 503: what was accepted comes back as a duplicate, the rest is done then.
    reason = "storage is unavailable or another delivery of these events is still in progress; retry later"
    return Reply(503, {**answer, "error": reason, "retry": retry}, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _outcome(task: asyncio.Future[dict[str, Any]], event: HrEvent) -> dict[str, Any]:
    """One event's result; a failure or a cancelled (late) task asks HR to retry that event."""
    if task.cancelled():
        return {"eventId": event.event_id, "status": "retry"}
    error = task.exception()
    if error is None:
        return task.result()
    if not isinstance(error, TransientError):
        log.error("HR event %s failed: %s", event.event_id, type(error).__name__)
    return {"eventId": event.event_id, "status": "retry"}


async def _accept(event: HrEvent, services: Services) -> dict[str, Any]:
    """Claim the eventId, dispatch its request, then mark it dispatched.

    A claim that is not marked dispatched never makes a retry look like a duplicate: if dispatching fails here the
    claim is released (best effort); if even that fails, a retry is asked to come back until the claim is stale.
    """
    table = services.storage.table(HR_EVENTS_TABLE)
    key = event_claim_key(event.event_id)
    received = services.clock()
    verdict = await claim(table, key, received, {"Type": event.type, "EmployeeId": event.employee_id})
    if verdict != "ours":
        return {"eventId": event.event_id, "status": verdict}
    try:
        return await _dispatch(event, services, received, table, key)
    except BaseException:
        with suppress(Exception):  # storage may be what failed; a stale claim is taken over by a later retry
            await asyncio.wait_for(asyncio.shield(release(table, key)), timeout=RELEASE_SECONDS)
        raise


async def _dispatch(
    event: HrEvent, services: Services, received: datetime, table: TableClient, key: dict[str, str]
) -> dict[str, Any]:
    settings = services.settings
    plan = dispatch_for(
        event,
        now=received,
        timezone=ZoneInfo(settings.hr_timezone),
        hire_lead_hours=settings.hr_hire_lead_hours,
        leaver_grace_days=settings.hr_leaver_grace_days,
    )
    if event.type == "terminate":  # a future hire of someone who leaves before starting must not license them
        await cancel_held(services.storage, event.user_principal_name, issued=received)
    placement, effective = await dispatch(services.storage, plan.message, effective=plan.effective, now=received)
    with transient("mark an HR event dispatched"):
        await table.update_entity({**key, "Status": "dispatched", "Placement": placement})
    result: dict[str, Any] = {"eventId": event.event_id, "status": placement}
    if effective:
        result["effective"] = effective.isoformat()
    return result
