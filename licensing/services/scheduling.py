"""Requests that take effect later: a queue visibility delay up to 7 days, a table beyond, released by a timer."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from licensing.adapters.storage import forecast_index, forecast_warnings
from licensing.adapters.storage.account import MAX_VISIBILITY_DELAY, SCHEDULED_TABLE, Storage, transient
from licensing.adapters.storage.rows import table_key
from licensing.core.forecast import ScheduledHire
from licensing.core.queues import LICENSE_REQUESTS_QUEUE

log = logging.getLogger(__name__)
HELD = "held"  # the one partition: rows sort by RowKey = due time, so "what is due" is a range query
Placement = Literal["now", "delayed", "held"]
RELEASE_WITHIN = timedelta(days=6)  # a day inside the queue's 7-day delay limit: the timer has many chances
SEND_CONCURRENCY = 32


class PacedSender:
    """Sends requests spaced out: the n-th is queued invisible for n / rate seconds, so a burst (the sweep's fixes,
    at most two writes each) reaches Graph as a steady trickle under the write budget instead of using 429s as
    the brake. At most SEND_CONCURRENCY sends in flight; ``close`` waits for them."""

    def __init__(self, storage: Storage, *, per_minute: int) -> None:
        self._storage = storage
        self._per_second = max(per_minute / 60, 0.01)
        self._gate = asyncio.Semaphore(SEND_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    async def send(self, message: Mapping[str, Any]) -> None:
        """Queue one license request behind the ones already sent."""
        delay = int(self.sent / self._per_second)
        self.sent += 1
        await self._gate.acquire()
        task = asyncio.ensure_future(self._storage.send(LICENSE_REQUESTS_QUEUE, dict(message), delay_seconds=delay))
        task.add_done_callback(lambda _: self._gate.release())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for every send (the first failure is raised)."""
        if self._tasks:
            await asyncio.gather(*self._tasks)


async def dispatch(
    storage: Storage, message: Mapping[str, Any], *, effective: datetime | None, now: datetime
) -> tuple[Placement, datetime | None]:
    """Enqueue now, enqueue invisible until ``effective``, or hold it in a table when that is > 7 days away; then
    keep the seat forecast's index of scheduled hires in step (see ``index_for_forecast``)."""
    placement, due = await _place(storage, message, effective=effective, now=now)
    await index_for_forecast(storage, message, due=due, now=now)
    return placement, due


async def index_for_forecast(
    storage: Storage, message: Mapping[str, Any], *, due: datetime | None, now: datetime
) -> None:
    """An assignment placed in the future is a scheduled hire (a re-sent one moves the user's, keyed by user); a
    mover's attributes follow to it; a hire taking effect now or a removal ends the user's scheduled hire.

    After the placement: the index never claims a request that was not placed, and if this write fails the caller's
    retry places the request again (onboarding is idempotent) and indexes it."""
    user = str(message.get("user") or "")
    if not user:
        return
    issued = _issued(message, now)
    if message.get("action", "assign") == "remove":
        await forecast_index.drop_hire(storage, user, issued=issued)
    elif due is not None:
        attributes = {str(k): str(v) for k, v in dict(message.get("attributes") or {}).items()}
        await forecast_index.index_hire(storage, ScheduledHire(user, due, attributes), issued=issued)
    elif message.get("hrEvent") == "hire":
        await forecast_index.drop_hire(storage, user, issued=issued)
    elif message.get("hrEvent") == "update":
        await forecast_index.update_attributes(storage, user, dict(message.get("attributes") or {}), issued=issued)


def _issued(message: Mapping[str, Any], now: datetime) -> datetime:
    """When the producer decided (the message's issuedAt, never later than now); ``now`` without a usable one."""
    try:
        issued = datetime.fromisoformat(str(message["issuedAt"]))
    except (KeyError, ValueError):
        return now
    return min(issued, now) if issued.tzinfo is not None else now


async def _place(
    storage: Storage, message: Mapping[str, Any], *, effective: datetime | None, now: datetime
) -> tuple[Placement, datetime | None]:
    delay = int((effective - now).total_seconds()) if effective else 0
    if delay <= 0:
        await storage.send(LICENSE_REQUESTS_QUEUE, message)
        return "now", None
    if delay <= MAX_VISIBILITY_DELAY:
        await storage.send(LICENSE_REQUESTS_QUEUE, message, delay_seconds=delay)
        return "delayed", effective
    assert effective is not None  # delay > 0 implies it
    entity = {
        "PartitionKey": HELD,
        "RowKey": f"{effective:%Y%m%dT%H%M%S}-{table_key(str(message.get('requestId') or uuid.uuid4().hex))}",
        "Effective": effective,
        "Message": json.dumps(message),
    }
    with transient("hold a scheduled request"):
        await storage.table(SCHEDULED_TABLE).upsert_entity(entity)
    return "held", effective


async def release_due(storage: Storage, *, now: datetime) -> int:
    """Move held requests due within 6 days onto the queue with their remaining delay (send, then delete)."""
    horizon = now + RELEASE_WITHIN
    table = storage.table(SCHEDULED_TABLE)
    released = 0
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey lt @until", parameters={"pk": HELD, "until": f"{horizon:%Y%m%dT%H%M%S}~"}
    )
    async for row in rows:
        effective: datetime = row["Effective"]
        delay = max(int((effective - now).total_seconds()), 0)
        # Send first: if the delete then fails the request goes out twice, and onboarding is idempotent.
        await storage.send(LICENSE_REQUESTS_QUEUE, json.loads(row["Message"]), delay_seconds=delay)
        with transient("release a scheduled request"):
            await table.delete_entity(row["PartitionKey"], row["RowKey"])
        released += 1
    if released:
        log.info("released %d scheduled request(s)", released)
    await forecast_index.purge_started(storage, now=now)  # the forecast's index keeps future hires only
    await forecast_warnings.purge_old_claims(storage, now=now)
    return released


async def cancel_held(storage: Storage, user: str, *, action: str = "assign", issued: datetime | None = None) -> int:
    """Drop held requests of one user (a leaver's future hire) and the seat forecast's count of it (of hires decided
    by ``issued``, None: any); returns how many held requests were dropped. A hire delayed on the queue cannot be
    dropped: when it runs, the terminate's later issuedAt outranks it (adapters/storage/leases)."""
    if action == "assign":
        await forecast_index.drop_hire(storage, user, issued=issued)
    table = storage.table(SCHEDULED_TABLE)
    dropped = 0
    async for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": HELD}):
        message = json.loads(row["Message"])
        if str(message.get("user", "")).lower() == user.lower() and message.get("action", "assign") == action:
            with transient("cancel a scheduled request"):
                await table.delete_entity(row["PartitionKey"], row["RowKey"])
            dropped += 1
    return dropped


async def held(storage: Storage) -> list[tuple[datetime, dict[str, Any]]]:
    """Every held request with its effective time, soonest first (for status views and tests)."""
    table = storage.table(SCHEDULED_TABLE)
    return [
        (row["Effective"], json.loads(row["Message"]))
        async for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": HELD})
    ]
