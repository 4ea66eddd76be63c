"""The failure index (partition ``failures`` of StatusIndex): the status page's recent failures without a scan.

One row per status row that became a failure, newest first (inverted ticks), pruned to the newest
``FAILURES_KEPT``. Readers re-read each status row, so an entry left behind by a row fixed since is harmless.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from licensing.adapters.storage.rows import failure_index_row, transient
from licensing.core.history import FAILURE_OUTCOMES
from licensing.core.records import StatusRecord

if TYPE_CHECKING:
    from licensing.adapters.storage.account import Storage

INDEX_TABLE = "StatusIndex"  # counters, seats and this index: see counters.py
FAILURES = "failures"
FAILURES_KEPT = 200
PRUNE_ONE_IN = 16  # one failure write in 16 trims the index: it holds at most ~FAILURES_KEPT + a few dozen rows


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


async def prune_failures(storage: Storage, *, keep: int = FAILURES_KEPT) -> int:
    """Delete the failure index rows past the newest ``keep``; returns how many went."""
    table = storage.table(INDEX_TABLE)
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": FAILURES}, select=["RowKey"])
    with transient("prune the failure index"):
        old = [row["RowKey"] async for row in rows][keep:]
        await asyncio.gather(*(_delete(table, FAILURES, key) for key in old))
    return len(old)


async def index_failure(storage: Storage, record: StatusRecord) -> None:
    """Index a status row that just became a failure (and now and then trim the index)."""
    await storage.table(INDEX_TABLE).upsert_entity(failure_index_row(FAILURES, record))
    if random.randrange(PRUNE_ONE_IN) == 0:  # noqa: S311  # spreading the pruning, not crypto
        await prune_failures(storage)


async def rebuild_failure_index(storage: Storage, newest: Sequence[StatusRecord]) -> None:
    """Index these rows (a recount's newest failures) and trim the index."""
    table = storage.table(INDEX_TABLE)
    rows = [failure_index_row(FAILURES, r) for r in newest]
    for start in range(0, len(rows), 100):  # a transaction holds at most 100 operations
        await table.submit_transaction([("upsert", row) for row in rows[start : start + 100]])
    await prune_failures(storage)


async def _still_failing(storage: Storage, keys: Sequence[tuple[str, str]]) -> list[StatusRecord]:
    rows = await asyncio.gather(*(storage.status(user, sku) for user, sku in keys))
    return [r for r in rows if r is not None and r.outcome in FAILURE_OUTCOMES]


async def _delete(table: TableClient, partition: str, key: str) -> None:
    with suppress(ResourceNotFoundError):  # another writer's prune took it first
        await table.delete_entity(partition, key)
