"""The seat forecast's index of scheduled hires, kept in the ScheduledRequests table under partitions of its own.

A delayed queue message cannot be listed (invisible messages do not show in peek), so every hire placed in the
future is also indexed here, whether it waits on the queue or in the "held" partition:

- ``forecast``: one row per scheduled hire, RowKey = start time + user, so "hires within the horizon" is a range
  query whose cost follows the hires in the horizon, never the number of users or status rows;
- ``forecast-user``: one row per user naming their ``forecast`` rows, written only under its ETag, so a re-sent hire
  replaces the user's row (counted once per user, the newest decision wins) and a terminate finds them all with
  a point read;
- ``forecast-warned``: the SeatsLow forecast warnings' daily claims (forecast_warnings.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from licensing.adapters.storage.account import SCHEDULED_TABLE, Storage, transient
from licensing.adapters.storage.rows import entity_or_none, table_key
from licensing.core.errors import TransientError
from licensing.core.forecast import ScheduledHire

log = logging.getLogger(__name__)
FORECAST = "forecast"
BY_USER = "forecast-user"
_FORMAT = "%Y%m%dT%H%M%S"
ATTEMPTS = 8  # writers of one user's row racing at once (one HR batch, a few instances): then the delivery retries


def _row_key(starts_at: datetime, user: str) -> str:
    return f"{starts_at.astimezone(UTC):{_FORMAT}}-{table_key(user.casefold())}"


Pointer = tuple[dict[str, Any], str]  # the user's row and its ETag


async def _pointer(storage: Storage, user: str) -> Pointer | None:
    with transient("read a scheduled hire"):
        entity = await entity_or_none(storage.table(SCHEDULED_TABLE), BY_USER, table_key(user.casefold()))
    if entity is None:
        return None
    return dict(entity), str(entity.metadata["etag"])


async def _swap(table: TableClient, pointer: Pointer | None, row: Mapping[str, Any] | None) -> bool:
    """Write (or, with ``row`` None, delete) the user's row only if it is still as read: absent, or the same ETag.
    False when another writer changed it meanwhile: the caller re-reads and decides again."""
    try:
        if pointer is None and row is not None:
            await table.create_entity(dict(row))
        elif pointer is not None and row is not None:
            await table.update_entity(
                dict(row), mode=UpdateMode.REPLACE, etag=pointer[1], match_condition=MatchConditions.IfNotModified
            )
        elif pointer is not None:
            await table.delete_entity(
                BY_USER, pointer[0]["RowKey"], etag=pointer[1], match_condition=MatchConditions.IfNotModified
            )
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return False
    return True


def _busy(user: str) -> TransientError:
    return TransientError(f"the scheduled hire of {user} kept changing under {ATTEMPTS} writers; retry")


async def index_hire(storage: Storage, hire: ScheduledHire, *, issued: datetime) -> bool:
    """Index (or move) the user's scheduled hire; False when a newer decision about the user is already indexed.

    The user's row names every ``forecast`` row of theirs that may exist before that row is written, and forgets
    the old ones only once they are deleted: storage failing between two writes raises (the HR delivery is retried
    and finishes the move) and never leaves a row a terminate cannot find. It is written only under its ETag, with
    the keys re-read plus ours, so racing hires of one person (one batch, two instances) all stay findable and the
    newest ``issued`` wins. Until a move finishes, a reader keeps the user's newest row (see ``scheduled_hires``).
    """
    key = _row_key(hire.starts_at, hire.user)
    table = storage.table(SCHEDULED_TABLE)
    user_row = {"PartitionKey": BY_USER, "RowKey": table_key(hire.user.casefold()), "Key": key, "Issued": issued}
    for _ in range(ATTEMPTS):
        pointer = await _pointer(storage, hire.user)
        if pointer is not None and pointer[0]["Issued"] > issued:
            if pointer[0]["Key"] != key:  # our row from a try cut short, if any: the newer decision replaces it
                await _delete_older(table, key, issued)
            return False
        keys = _keys(pointer) | {key}
        with transient("index a scheduled hire"):
            if await _swap(table, pointer, {**user_row, "Keys": json.dumps(sorted(keys))}):
                break
    else:
        raise _busy(hire.user)
    row = {
        "PartitionKey": FORECAST,
        "RowKey": key,
        "User": hire.user,
        "StartsAt": hire.starts_at.astimezone(UTC),
        "Attributes": json.dumps(dict(hire.attributes), sort_keys=True),
        "Issued": issued,
    }
    with transient("index a scheduled hire"):
        await table.upsert_entity(row)
    deleted = {old for old in keys - {key} if await _delete_older(table, old, issued)}
    await _settle(storage, hire.user, key, issued, deleted)
    return True


async def _settle(storage: Storage, user: str, key: str, issued: datetime, deleted: set[str]) -> None:
    """After the row is written: forget the deleted rows in the user's row, or, when a terminate or a newer hire
    took the user's row meanwhile (it may have missed our row, written after it looked), delete our row."""
    table = storage.table(SCHEDULED_TABLE)
    for _ in range(ATTEMPTS):
        pointer = await _pointer(storage, user)
        if pointer is None or pointer[0]["Key"] != key:
            await _delete_older(table, key, issued)
            return
        if not deleted & _keys(pointer):
            return
        row = {**pointer[0], "Keys": json.dumps(sorted(_keys(pointer) - deleted))}
        with transient("index a scheduled hire"):
            if await _swap(table, pointer, row):
                return
    raise _busy(user)


async def _delete_older(table: TableClient, key: str, issued: datetime | None) -> bool:
    """Delete a ``forecast`` row unless a decision newer than ``issued`` (None: any) wrote it; True when it is gone.
    A stale writer never deletes the row a newer hire of the same start time just wrote."""
    with transient("drop a scheduled hire"):
        try:
            row = await table.get_entity(FORECAST, key)
            if issued is not None and row["Issued"] > issued:
                return False
            etag = row.metadata["etag"]
            await table.delete_entity(FORECAST, key, etag=etag, match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError:
            return True
        except ResourceModifiedError:
            return False
    return True


def _keys(pointer: Pointer | None) -> set[str]:
    """Every ``forecast`` row the user's row names (its current one included)."""
    if pointer is None:
        return set()
    return {pointer[0]["Key"], *json.loads(pointer[0].get("Keys") or "[]")}


async def update_attributes(storage: Storage, user: str, attributes: Mapping[str, str], *, issued: datetime) -> bool:
    """A mover's new attributes replace those of the user's scheduled hire (the policy may pick other SKUs);
    False when the user has no scheduled hire or a newer decision is indexed."""
    table = storage.table(SCHEDULED_TABLE)
    for _ in range(ATTEMPTS):
        pointer = await _pointer(storage, user)
        if pointer is None or pointer[0]["Issued"] > issued:
            return False
        with transient("update a scheduled hire"):
            if await _swap(table, pointer, {**pointer[0], "Issued": issued}):  # older writers now lose to us
                break
    else:
        raise _busy(user)
    row = {"PartitionKey": FORECAST, "RowKey": pointer[0]["Key"], "Issued": issued}
    with transient("update a scheduled hire"):
        try:
            await table.update_entity({**row, "Attributes": json.dumps(dict(attributes), sort_keys=True)})
        except ResourceNotFoundError:  # dropped meanwhile (a terminate)
            return False
    return True


async def drop_hire(storage: Storage, user: str, *, issued: datetime | None = None) -> bool:
    """Forget the user's scheduled hire (a terminate, decided at ``issued``; None: whenever); True when there was
    one. A hire decided after ``issued`` stays. The user's row goes last, under its ETag: a hire indexed meanwhile
    makes the drop look again, so no row is left that a later terminate could not find."""
    table = storage.table(SCHEDULED_TABLE)
    found = False
    for _ in range(ATTEMPTS):
        pointer = await _pointer(storage, user)
        if pointer is None or (issued is not None and pointer[0]["Issued"] > issued):
            return found
        found = True
        for key in _keys(pointer):
            await _delete_older(table, key, issued)
        with transient("drop a scheduled hire"):
            if await _swap(table, pointer, None):
                return True
    raise _busy(user)


async def scheduled_hires(storage: Storage, *, after: datetime, until: datetime) -> list[ScheduledHire]:
    """Hires starting after ``after`` and before ``until``, soonest first, one per user (their newest row)."""
    table = storage.table(SCHEDULED_TABLE)
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey gt @after and RowKey lt @until",
        parameters={"pk": FORECAST, "after": _until(after), "until": _until(until)},
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
            if _keys(pointer) == {row["RowKey"]}:  # its only row (a move's old rows stay findable)
                await _swap(table, pointer, None)  # unless a new hire of the user's took it meanwhile
            with suppress(ResourceNotFoundError):
                await table.delete_entity(FORECAST, row["RowKey"])
            purged += 1
    return purged
