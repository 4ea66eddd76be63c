"""The seat forecast's index of scheduled hires, kept in the ScheduledRequests table under partitions of its own.

A delayed queue message cannot be listed (invisible messages do not show in peek), so every hire placed in the
future is also indexed here, whether it waits on the queue or in the "held" partition:

- ``forecast``: one row per scheduled hire, RowKey = start time + user, so "hires within the horizon" is a range
  query whose cost follows the hires in the horizon, never the number of users or status rows;
- ``forecast-user``: one row per user naming their ``forecast`` row, so a re-sent hire replaces the user's row
  (counted once per user, the newest decision wins) and a terminate finds it with a point read;
- ``forecast-warned``: one row per SKU and day a SeatsLow forecast warning was recorded (at most one a day).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, date, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from licensing.adapters.storage.account import SCHEDULED_TABLE, Storage, transient
from licensing.adapters.storage.rows import table_key
from licensing.core.forecast import ScheduledHire

log = logging.getLogger(__name__)
FORECAST = "forecast"
BY_USER = "forecast-user"
WARNED = "forecast-warned"
_FORMAT = "%Y%m%dT%H%M%S"


def _row_key(starts_at: datetime, user: str) -> str:
    return f"{starts_at.astimezone(UTC):{_FORMAT}}-{table_key(user.casefold())}"


async def _pointer(storage: Storage, user: str) -> dict[str, Any] | None:
    with transient("read a scheduled hire"):
        try:
            return dict(await storage.table(SCHEDULED_TABLE).get_entity(BY_USER, table_key(user.casefold())))
        except ResourceNotFoundError:
            return None


async def index_hire(storage: Storage, hire: ScheduledHire, *, issued: datetime) -> bool:
    """Index (or move) the user's scheduled hire; False when a newer decision about the user is already indexed.

    The user's row names every ``forecast`` row of theirs that may exist before that row is written, and forgets
    the old ones only once they are deleted: storage failing between two writes raises (the HR delivery is retried
    and finishes the move) and never leaves a row a terminate cannot find. Until the retry, a reader keeps only the
    user's newest row (see ``scheduled_hires``).
    """
    pointer = await _pointer(storage, hire.user)
    if pointer is not None and pointer["Issued"] > issued:
        return False
    key = _row_key(hire.starts_at, hire.user)
    row = {
        "PartitionKey": FORECAST,
        "RowKey": key,
        "User": hire.user,
        "StartsAt": hire.starts_at.astimezone(UTC),
        "Attributes": json.dumps(dict(hire.attributes), sort_keys=True),
        "Issued": issued,
    }
    user_row = {"PartitionKey": BY_USER, "RowKey": table_key(hire.user.casefold()), "Key": key, "Issued": issued}
    stale = _keys(pointer) - {key}
    table = storage.table(SCHEDULED_TABLE)
    with transient("index a scheduled hire"):
        await table.upsert_entity({**user_row, "Keys": json.dumps(sorted({*stale, key}))})
        await table.upsert_entity(row)
        for old in stale:
            with suppress(ResourceNotFoundError):
                await table.delete_entity(FORECAST, old)
        await table.upsert_entity({**user_row, "Keys": json.dumps([key])})
    return True


def _keys(pointer: Mapping[str, Any] | None) -> set[str]:
    """Every ``forecast`` row the user's row names (its current one included)."""
    if pointer is None:
        return set()
    return {pointer["Key"], *json.loads(pointer.get("Keys") or "[]")}


async def update_attributes(storage: Storage, user: str, attributes: Mapping[str, str], *, issued: datetime) -> bool:
    """A mover's new attributes replace those of the user's scheduled hire (the policy may pick other SKUs);
    False when the user has no scheduled hire or a newer decision is indexed."""
    pointer = await _pointer(storage, user)
    if pointer is None or pointer["Issued"] > issued:
        return False
    table = storage.table(SCHEDULED_TABLE)
    row = {"PartitionKey": FORECAST, "RowKey": pointer["Key"], "Issued": issued}
    with transient("update a scheduled hire"):
        try:
            await table.update_entity({**row, "Attributes": json.dumps(dict(attributes), sort_keys=True)})
            await table.update_entity({"PartitionKey": BY_USER, "RowKey": pointer["RowKey"], "Issued": issued})
        except ResourceNotFoundError:  # dropped meanwhile (a terminate)
            return False
    return True


async def drop_hire(storage: Storage, user: str) -> bool:
    """Forget the user's scheduled hire (a terminate); True when there was one."""
    pointer = await _pointer(storage, user)
    if pointer is None:
        return False
    table = storage.table(SCHEDULED_TABLE)
    with transient("drop a scheduled hire"):
        for key in _keys(pointer):
            with suppress(ResourceNotFoundError):
                await table.delete_entity(FORECAST, key)
        with suppress(ResourceNotFoundError):
            await table.delete_entity(BY_USER, pointer["RowKey"])
    return True


async def scheduled_hires(storage: Storage, *, after: datetime, until: datetime) -> list[ScheduledHire]:
    """Hires starting after ``after`` and before ``until``, soonest first, one per user (their newest row)."""
    table = storage.table(SCHEDULED_TABLE)
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey gt @after and RowKey lt @until",
        parameters={"pk": FORECAST, "after": f"{after.astimezone(UTC):{_FORMAT}}~", "until": _until(until)},
    )
    newest: dict[str, tuple[datetime, ScheduledHire]] = {}
    with transient("read scheduled hires"), suppress(ResourceNotFoundError):  # no table yet: nothing scheduled
        async for row in rows:
            hire = ScheduledHire(row["User"], row["StartsAt"], json.loads(row.get("Attributes") or "{}"))
            seen = newest.get(hire.user.casefold())
            if seen is None or row["Issued"] > seen[0]:
                newest[hire.user.casefold()] = (row["Issued"], hire)
    return sorted((hire for _, hire in newest.values()), key=lambda h: h.starts_at)


def _until(until: datetime) -> str:
    return f"{until.astimezone(UTC):{_FORMAT}}~"


async def purge_started(storage: Storage, *, now: datetime) -> int:
    """Drop index rows of hires that have started (their requests are out of the forecast's hands); how many."""
    table = storage.table(SCHEDULED_TABLE)
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey lt @until", parameters={"pk": FORECAST, "until": _until(now)}
    )
    purged = 0
    with transient("purge started hires"):
        async for row in rows:
            if row["StartsAt"] > now:
                continue  # the same second, not started yet
            pointer = await _pointer(storage, row["User"])
            if pointer is not None and pointer["Key"] == row["RowKey"]:
                with suppress(ResourceNotFoundError):
                    await table.delete_entity(BY_USER, pointer["RowKey"])
            with suppress(ResourceNotFoundError):
                await table.delete_entity(FORECAST, row["RowKey"])
            purged += 1
        old = table.query_entities(
            "PartitionKey eq @pk and RowKey lt @today", parameters={"pk": WARNED, "today": now.date().isoformat()}
        )
        async for row in old:  # yesterday's claims: one row per SKU a day
            with suppress(ResourceNotFoundError):
                await table.delete_entity(WARNED, row["RowKey"])
    return purged


async def claim_warning(storage: Storage, *, part_number: str, day: date) -> bool:
    """True for the first caller per SKU and day: the one that records the day's SeatsLow forecast warning."""
    entity = {"PartitionKey": WARNED, "RowKey": f"{day.isoformat()}-{table_key(part_number.casefold())}"}
    with transient("claim a seat forecast warning"):
        try:
            await storage.table(SCHEDULED_TABLE).create_entity(entity)
        except ResourceExistsError:
            return False
    return True


async def release_warning(storage: Storage, *, part_number: str, day: date) -> None:
    """Give a claim back when its warning could not be recorded, so a later call records it (best effort)."""
    with suppress(Exception):
        await storage.table(SCHEDULED_TABLE).delete_entity(
            WARNED, f"{day.isoformat()}-{table_key(part_number.casefold())}"
        )
