"""The failure index (partition ``failures`` of StatusIndex): the status page's recent failures without a scan.

At most one entry per status row, and only while that row is failing: the entry's RowKey is the inverted ticks of
the row's UpdatedAt and a digest of its user and SKU (rows.failure_index_row), so it is computable from the row.
A status write that replaces a failing row deletes the old row's entry (also when the new outcome fails again:
the new entry takes the top) and adds the new row's entry when it fails. So the partition holds the rows failing
now, and the newest N is a top-N query in RowKey order whatever the partition size: no pruning. A write whose
index update was lost (storage failing, a worker dying, a race) leaves an entry too many or one missing:
readers re-read each status row and skip duplicates, and ``rebuild_failure_index`` (the daily reconcile)
replaces the partition with the scan's failing set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableClient

from licensing.adapters.storage.rows import failure_index_row, transient
from licensing.core.history import FAILURE_OUTCOMES
from licensing.core.records import StatusRecord

if TYPE_CHECKING:
    from licensing.adapters.storage.account import Storage

INDEX_TABLE = "StatusIndex"  # counters, seats and this index: see counters.py
FAILURES = "failures"
BATCH = 100  # operations in one entity-group transaction, at most


async def recent_failures(storage: Storage, *, limit: int) -> list[StatusRecord]:
    """The newest status rows whose outcome is one of services/overview.FAILURE_OUTCOMES, newest first, each
    re-read from LicenseStatus (a row no longer failing is left out): constant time."""
    if limit <= 0:
        return []
    found: list[StatusRecord] = []
    seen: set[tuple[str, str]] = set()
    batch: list[tuple[str, str]] = []
    rows = storage.table(INDEX_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": FAILURES}, select=["User", "Sku"], results_per_page=2 * limit
    )
    with transient("read the failure index"):
        async for row in rows:
            key = (row["User"], row["Sku"])
            if key in seen:
                continue
            seen.add(key)
            batch.append(key)
            if len(batch) >= limit - len(found):  # re-read a batch at once: usually the first one is enough
                found += await _still_failing(storage, batch)
                batch = []
                if len(found) >= limit:
                    break
        found += await _still_failing(storage, batch)
    return sorted(found, key=lambda r: r.updated_at, reverse=True)[:limit]


async def failure_moved(storage: Storage, *, before: StatusRecord | None, after: StatusRecord | None) -> None:
    """Keep the index in step with one status write: ``before`` the row it replaced (None: created), ``after``
    the row written (None: deleted). The new entry goes in first, so a failure in between leaves a duplicate
    (skipped by readers) rather than a failing row missing from the index."""
    old = _key(before)
    table = storage.table(INDEX_TABLE)
    if after is not None and after.outcome in FAILURE_OUTCOMES:
        entry = failure_index_row(FAILURES, after)
        await table.upsert_entity(entry)
        if entry["RowKey"] == old:
            return
    if old is not None:
        await _delete(table, old)


async def rebuild_failure_index(storage: Storage, listed: Collection[str], failing: Sequence[StatusRecord]) -> None:
    """Make the index hold exactly ``failing`` (a recount's failing rows): add the missing entries and delete
    those of ``listed`` (the entries there BEFORE the scan) that the scan did not find failing. An entry added
    after that listing belongs to a write the scan may have missed, so it is left alone."""
    table = storage.table(INDEX_TABLE)
    wanted = {row["RowKey"]: row for row in (failure_index_row(FAILURES, r) for r in failing)}
    adds = [("upsert", row) for key, row in wanted.items() if key not in listed]
    for start in range(0, len(adds), BATCH):
        await table.submit_transaction(adds[start : start + BATCH])
    stale = sorted(set(listed) - set(wanted))
    for start in range(0, len(stale), BATCH):
        chunk = stale[start : start + BATCH]
        try:
            await table.submit_transaction([("delete", {"PartitionKey": FAILURES, "RowKey": k}) for k in chunk])
        except TableTransactionError:  # a writer deleted one of them meanwhile (404 fails the whole batch)
            await asyncio.gather(*(_delete(table, key) for key in chunk))


async def listed_failures(storage: Storage) -> set[str]:
    """The RowKeys of every entry in the index now."""
    rows = storage.table(INDEX_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": FAILURES}, select=["RowKey"]
    )
    return {row["RowKey"] async for row in rows}


def _key(record: StatusRecord | None) -> str | None:
    if record is None or record.outcome not in FAILURE_OUTCOMES:
        return None
    return str(failure_index_row(FAILURES, record)["RowKey"])


async def _still_failing(storage: Storage, keys: Sequence[tuple[str, str]]) -> list[StatusRecord]:
    rows = await asyncio.gather(*(storage.status(user, sku) for user, sku in keys))
    return [r for r in rows if r is not None and r.outcome in FAILURE_OUTCOMES]


async def _delete(table: TableClient, key: str) -> None:
    with suppress(ResourceNotFoundError):  # another writer (or a reconcile) took it first
        await table.delete_entity(FAILURES, key)
