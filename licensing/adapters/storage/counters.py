"""Status counters kept at write time, the per-day history, the failure index and the reconcile (table StatusIndex).

Why counters: the status page counted outcomes by scanning every LicenseStatus row (~13 s at 100,000 rows).
Here each status write that changes a row's outcome moves the counters as it happens, so the page reads a
handful of rows whatever the table size. The partitions of StatusIndex:

- ``counters``: the totals, sharded over ``total-00``..``total-07`` (a transition picks a shard at random, so
  many instances rarely race for one row), and the outcomes recorded per UTC day, ``day-<date>-<shard>``. Each
  row holds one ``n_<outcome>`` property per outcome. A transition's -1 (old outcome) and +1 (new outcome) sit
  in ONE row, and its day +1 in another row of the same partition: both are written in one entity-group
  transaction, each under the ETag it was read with, so the totals are never torn and a lost race (HTTP 412,
  or 409 when two writers create a shard) is re-read and retried.
- ``seats``: one row per UTC day, the consumed seats per SKU at the daily snapshot (the last write of a day wins).
- ``failures``: the failure index, one entry per status row failing now, newest first (failure_index.py).
- ``counters``/``reconciled``: when ``reconcile`` last replaced the totals (``last_reconciled``).

The status write and its counter write are two requests: storage failing (or the worker dying) between them
leaves the totals off by one, and so does a message delivered again after that (its call finds its own row
written, which looks exactly like a same-outcome rewrite) or a delete whose response was lost (its re-send's
404 looks like a concurrent delete's). A put_status whose response was lost is counted (account.put_status).
``reconcile`` recounts by a scan and replaces the totals, ETag-conditionally so a counter moving during the
scan is never lost; the daily snapshot timer and ``licensing status --recount`` run it. Rows written before
the counters existed are counted only from the first reconcile on: until then the page says so
(``last_reconciled`` is None).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from licensing.adapters.storage.failure_index import INDEX_TABLE, failure_moved, listed_failures, rebuild_failure_index
from licensing.adapters.storage.failure_index import recent_failures as recent_failures  # noqa: PLC0414  # the page's interface
from licensing.adapters.storage.rows import STATUS_TABLE, entity_or_none, transient
from licensing.core.errors import TransientError
from licensing.core.history import (
    FAILURE_OUTCOMES,
    DayPoint,
    counted,
    day_points,
    fold_counters,
    fold_days,
    moves,
    ordered,
    outcome_column,
)
from licensing.core.records import StatusRecord

if TYPE_CHECKING:
    from licensing.adapters.storage.account import Storage

log = logging.getLogger(__name__)

COUNTERS, SEATS = "counters", "seats"  # its partitions (and failure_index.FAILURES)
RECONCILED = "reconciled"  # the RowKey (partition COUNTERS) of the last successful reconcile's time
SHARDS = 8  # total rows; 8 writers at once meet on one row 1 time in 8, and a read of the totals stays 8 rows
COUNT_ATTEMPTS = 32  # like STATUS_WRITE_ATTEMPTS: each lost race means another writer's transition went in
RECONCILE_ATTEMPTS = 3
OUTLINE = ("PartitionKey", "RowKey", "Outcome", "UpdatedAt")  # what a recount reads of each status row
_LOST_RACE = frozenset({409, 412})  # a shard created by two writers at once; an ETag that no longer matches
_UNCHANGED = MatchConditions.IfNotModified
Operation = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], dict[str, Any]]


async def outcome_totals(storage: Storage) -> dict[str, int]:
    """Status rows per outcome now (same counting rules as services/overview.Tally: the ~leaver tombstone is not
    counted), read from the counters: constant time whatever the table size."""
    with transient("read the status counters"):
        rows = await _totals(storage.table(INDEX_TABLE))
    return ordered(fold_counters(rows))


async def history(storage: Storage, *, days: int, today: date) -> tuple[DayPoint, ...]:
    """Exactly `days` points, oldest first, ending with `today` (zeros / () where nothing was recorded)."""
    first, after = today - timedelta(days=max(days, 1) - 1), today + timedelta(days=1)
    table = storage.table(INDEX_TABLE)
    recorded = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": COUNTERS, "low": f"day-{first.isoformat()}", "high": f"day-{after.isoformat()}"},
    )
    snapshots = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": SEATS, "low": first.isoformat(), "high": after.isoformat()},
    )
    with transient("read the status history"):
        day_rows, seat_rows = await asyncio.gather(_all(recorded), _all(snapshots))
    seats = {date.fromisoformat(row["RowKey"]): json.loads(row.get("Seats") or "{}") for row in seat_rows}
    return day_points(days=days, today=today, recorded=fold_days(day_rows), seats=seats)


async def record_seats(storage: Storage, *, day: date, seats: Mapping[str, int]) -> None:
    """Store the day's seats-in-use snapshot (idempotent: the last call of the day wins)."""
    row = {"PartitionKey": SEATS, "RowKey": day.isoformat(), "Seats": json.dumps(dict(seats), sort_keys=True)}
    with transient("record the day's seats"):
        await storage.table(INDEX_TABLE).upsert_entity(row, mode=UpdateMode.REPLACE)


async def status_moved(storage: Storage, *, before: StatusRecord | None, after: StatusRecord | None, sku: str) -> None:
    """Called once a status write or delete of ``sku``'s row went in: ``before`` the row it replaced (None:
    created), ``after`` the row written (None: deleted). Moves the counters, counts the new outcome on its UTC
    day, and keeps the failure index in step (also when the counters do not move: failed again, later).

    A failure here is logged, not raised: the status row (what matters) is written, and a retry of the whole
    request would find no transition left to count. ``reconcile`` repairs the totals and the index.
    """
    if not counted(sku):
        return
    outcome = after.outcome if after is not None else None
    try:
        if delta := moves(before.outcome if before is not None else None, outcome):
            day = after.updated_at.astimezone(UTC).date() if after is not None else None
            await count(storage.table(INDEX_TABLE), delta, day=day, recorded=outcome)
    except (AzureError, TransientError) as exc:
        log.warning("status counters not moved for a %s row (%s): reconcile repairs them", sku, type(exc).__name__)
    try:
        await failure_moved(storage, before=before, after=after)
    except (AzureError, TransientError) as exc:
        log.warning("failure index not updated for a %s row (%s): reconcile repairs it", sku, type(exc).__name__)


async def last_reconciled(storage: Storage) -> datetime | None:
    """When ``reconcile`` last replaced the totals, or None if it never did (one point read)."""
    with transient("read when the counters were recounted"):
        row = await entity_or_none(storage.table(INDEX_TABLE), COUNTERS, RECONCILED)
    at = None if row is None else row.get("At")
    return at if isinstance(at, datetime) else None


async def count(table: TableClient, delta: Mapping[str, int], *, day: date | None, recorded: str | None) -> None:
    """Add ``delta`` to a random totals shard and, with ``day``, 1 to ``recorded`` on that day: one transaction."""
    for _ in range(COUNT_ATTEMPTS):
        shard = random.randrange(SHARDS)  # noqa: S311  # load spreading; a new shard after a lost race
        moves_ = [(f"total-{shard:02d}", dict(delta))]
        if day is not None and recorded is not None:
            moves_.append((f"day-{day.isoformat()}-{shard:02d}", {recorded: 1}))
        rows = await asyncio.gather(*(entity_or_none(table, COUNTERS, key) for key, _ in moves_))
        try:
            await table.submit_transaction([_bump(key, row, d) for (key, d), row in zip(moves_, rows, strict=True)])
        except TableTransactionError as exc:
            if exc.status_code not in _LOST_RACE:
                raise
            continue
        return
    raise TransientError("the status counters kept changing under us")


async def any_status_row(storage: Storage) -> bool:
    """Whether LicenseStatus holds a row (one row read at most): the page asks before the first recount."""
    rows = storage.table(STATUS_TABLE).list_entities(results_per_page=1, select=["PartitionKey"])
    with transient("look for a status row"):
        async for _ in rows:
            return True
    return False


async def reconcile(
    storage: Storage, *, attempts: int = RECONCILE_ATTEMPTS, at: datetime | None = None
) -> dict[str, int]:
    """Recount the status rows by a scan (Tally's rules) and replace the totals with the count.

    The replacement is one transaction over every totals shard, each under the ETag read before the scan, and the
    ``reconciled`` marker (``at``, default now): if a counter moved during the scan the count may miss that move,
    so nothing is replaced and the recount starts again, up to ``attempts`` times; then TransientError says so
    (the totals are left as they were). The failure index is replaced by the same scan's failing rows. Returns
    the counts, as ``outcome_totals`` would read them. Per-day counts are not recounted: a day's transitions
    leave no trace in the status rows.
    """
    table = storage.table(INDEX_TABLE)
    for attempt in range(1, attempts + 1):
        with transient("recount the status rows"):
            shards = {row["RowKey"]: row for row in await _totals(table)}
            listed = await listed_failures(storage)  # before the scan: see rebuild_failure_index
            counts: Counter[str] = Counter()
            failing: list[StatusRecord] = []
            async for row in storage.statuses(select=OUTLINE):
                if counted(row.sku):
                    counts[row.outcome] += 1
                    if row.outcome in FAILURE_OUTCOMES:
                        failing.append(row)
            marker = {"PartitionKey": COUNTERS, "RowKey": RECONCILED, "At": at or datetime.now(UTC)}
            try:
                await table.submit_transaction([*_replace_totals(shards, counts), ("upsert", marker)])
            except TableTransactionError as exc:
                if exc.status_code not in _LOST_RACE:
                    raise
                log.warning("reconcile: the counters moved during recount %d of %d", attempt, attempts)
                continue
            await rebuild_failure_index(storage, listed, failing)
        return ordered(counts)
    raise TransientError(f"the status counters moved during each of {attempts} recounts; totals left as they were")


def _bump(key: str, row: Any, delta: Mapping[str, int]) -> Operation:  # noqa: ANN401  # a TableEntity or None
    entity: dict[str, Any] = {"PartitionKey": COUNTERS, "RowKey": key}
    if row is None:  # a second writer creating it too fails the transaction with 409: re-read, then update
        return ("create", entity | {outcome_column(o): n for o, n in delta.items()})
    entity |= {outcome_column(o): int(row.get(outcome_column(o)) or 0) + n for o, n in delta.items()}
    return ("update", entity, {"mode": UpdateMode.MERGE, "etag": row.metadata["etag"], "match_condition": _UNCHANGED})


def _replace_totals(shards: Mapping[str, Any], counts: Mapping[str, int]) -> list[Operation]:
    operations: list[Operation] = []
    for shard in range(SHARDS):
        key = f"total-{shard:02d}"
        entity: dict[str, Any] = {"PartitionKey": COUNTERS, "RowKey": key}
        if shard == 0:
            entity |= {outcome_column(o): n for o, n in counts.items()}
        if key not in shards:
            operations.append(("create", entity))
            continue
        etag = shards[key].metadata["etag"]
        replace = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": _UNCHANGED}
        operations.append(("update", entity, replace))
    return operations


async def _totals(table: TableClient) -> list[Any]:
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": COUNTERS, "low": "total-", "high": "total."},
    )
    return await _all(rows)


async def _all(rows: Any) -> list[Any]:  # noqa: ANN401  # an AsyncItemPaged of entities
    return [row async for row in rows]
