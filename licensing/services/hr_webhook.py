"""POST /api/hr/events: signed HR events become license-requests messages, once each, acked fast."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

from licensing.adapters.storage.account import HR_EVENTS_TABLE, transient
from licensing.adapters.storage.rows import table_key
from licensing.core.hr_events import HrEvent, PayloadInvalid, dispatch_for, parse_events
from licensing.core.signing import SignatureRejected, check_signature
from licensing.services.context import Services
from licensing.services.reply import Reply, error
from licensing.services.scheduling import cancel_held, dispatch

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024  # 500 events of ~1 KiB fit easily
IN_FLIGHT = timedelta(seconds=60)  # a claim younger than this belongs to a request still running
CONCURRENCY = 32  # storage round trips in flight per request: a 500-event batch acks in well under a second


async def receive_hr_events(
    headers: Mapping[str, str], body: bytes, services: Services, *, now: float | None = None
) -> Reply:
    """Check type, size and signature before parsing; nothing is enqueued unless all three pass."""
    lowered = {k.lower(): v for k, v in headers.items()}
    media_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return error(415, f"Content-Type must be application/json, not {media_type or 'missing'}")
    if len(body) > MAX_BODY_BYTES:
        return error(413, f"body is {len(body):,} bytes; the limit is {MAX_BODY_BYTES:,} (send up to 500 events)")
    secrets = services.settings.hr_webhook_secrets
    if not secrets:
        log.error("HR webhook called but HR_WEBHOOK_SECRET is not set")
        return error(503, "the webhook is not configured yet (HR_WEBHOOK_SECRET); retry later")
    try:
        check_signature(
            secrets=secrets,
            timestamp=lowered.get("x-timestamp"),
            signature=lowered.get("x-signature"),
            body=body,
            now=time.time() if now is None else now,
        )
    except SignatureRejected as exc:
        log.warning("HR webhook signature rejected: %s", exc)
        return error(401, f"signature rejected: {exc}")
    try:
        events = parse_events(body)
    except PayloadInvalid as exc:
        return error(400, "invalid payload", problems=exc.problems)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(event: HrEvent) -> dict[str, Any]:
        async with gate:
            return await _accept(event, services)

    results = await asyncio.gather(*(one(e) for e in events))
    accepted = [r for r in results if r["status"] != "duplicate"]
    log.info("HR webhook: %d event(s), %d duplicate(s)", len(results), len(results) - len(accepted))
    return Reply(
        202,
        {
            "accepted": [r["eventId"] for r in accepted],
            "duplicates": [r["eventId"] for r in results if r["status"] == "duplicate"],
            "scheduled": [r for r in accepted if r["status"] != "now"],
        },
    )


async def _accept(event: HrEvent, services: Services) -> dict[str, Any]:
    """Claim the eventId, dispatch its request, then mark it dispatched (a crash in between resumes on retry)."""
    table = services.storage.table(HR_EVENTS_TABLE)
    key = {"PartitionKey": _shard(event.event_id), "RowKey": table_key(event.event_id)}
    received = services.clock()
    with transient("record an HR event"):
        try:
            await table.create_entity(
                {
                    **key,
                    "Status": "received",
                    "Type": event.type,
                    "ReceivedAt": received,
                    "EmployeeId": event.employee_id,
                }
            )
        except ResourceExistsError:
            if not await _take_over(table, key, received):
                return {"eventId": event.event_id, "status": "duplicate"}
    settings = services.settings
    plan = dispatch_for(
        event,
        now=received,
        timezone=ZoneInfo(settings.hr_timezone),
        hire_lead_hours=settings.hr_hire_lead_hours,
        leaver_grace_days=settings.hr_leaver_grace_days,
    )
    if event.type == "terminate":  # a future hire of someone who leaves before starting must not license them
        await cancel_held(services.storage, event.user_principal_name)
    placement, effective = await dispatch(services.storage, plan.message, effective=plan.effective, now=received)
    with transient("mark an HR event dispatched"):
        await table.update_entity({**key, "Status": "dispatched", "Placement": placement})
    result: dict[str, Any] = {"eventId": event.event_id, "status": placement}
    if effective:
        result["effective"] = effective.isoformat()
    return result


async def _take_over(table: Any, key: dict[str, str], now: datetime) -> bool:  # noqa: ANN401  # TableClient
    """A retry of a known eventId: dispatched, or still being handled by another request, means duplicate.

    Only a claim left behind by a request that died before dispatching (older than IN_FLIGHT) is taken
    over, with an ETag condition so two retries cannot both take it.
    """
    existing = await table.get_entity(key["PartitionKey"], key["RowKey"])
    if existing.get("Status") == "dispatched" or now - existing["ReceivedAt"] < IN_FLIGHT:
        return False
    try:
        await table.update_entity(
            {**key, "ReceivedAt": now}, etag=existing.metadata["etag"], match_condition=MatchConditions.IfNotModified
        )
    except ResourceModifiedError:
        return False
    return True


def _shard(event_id: str) -> str:
    # Spread ids over 16 partitions so a burst from HR does not queue on one partition's throughput.
    return hashlib.sha256(event_id.encode()).hexdigest()[0]
