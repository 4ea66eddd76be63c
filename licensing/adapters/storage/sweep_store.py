"""What the sweep keeps in storage: a run lease, the users deltaLink, run summaries, drift rows, the CSV report."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TransactionOperation
from azure.storage.blob.aio import BlobServiceClient

from licensing.adapters.storage.account import DRIFT_TABLE, RUNS_TABLE, Storage, transient
from licensing.adapters.storage.rows import newest_first, table_key
from licensing.core.drift import Drift
from licensing.core.model import UserFacts

REPORT_CONTAINER = "sweep-reports"
LEASE = timedelta(hours=2)  # a crashed run frees the lease after this
TX_SIZE = 100  # Table storage's limit per transaction (same partition)
TX_IN_FLIGHT = 8  # 800 rows in flight at most: memory stays flat while writes overlap the read
CSV_COLUMNS = ("run_id", "user_id", "user_principal_name", "kinds", "skus", "fix", "details")


async def acquire_lease(storage: Storage, *, run_id: str, now: datetime) -> bool:
    """Only one sweep at a time (timer or CLI): an expiring lease row taken with optimistic concurrency."""
    table = storage.table(RUNS_TABLE)
    row = {"PartitionKey": "lock", "RowKey": "sweep", "RunId": run_id, "ExpiresAt": now + LEASE}
    with transient("take the sweep lease"):
        try:
            await table.create_entity(row)
        except ResourceExistsError:
            current = await table.get_entity("lock", "sweep")
            if current["ExpiresAt"] > now:
                return False
            try:
                await table.update_entity(
                    row, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            except ResourceModifiedError:  # another sweep took it between our read and write
                return False
        return True


async def release_lease(storage: Storage, *, run_id: str) -> None:
    """Drop the lease if it is still ours."""
    table = storage.table(RUNS_TABLE)
    with transient("release the sweep lease"):
        try:
            current = await table.get_entity("lock", "sweep")
        except ResourceNotFoundError:
            return
        if current.get("RunId") == run_id:
            await table.delete_entity(current, match_condition=MatchConditions.IfNotModified)  # under its ETag


async def read_delta_state(storage: Storage) -> tuple[str | None, datetime | None]:
    """(the users deltaLink, when the last full read finished)."""
    with transient("read the sweep state"):
        try:
            row = await storage.table(RUNS_TABLE).get_entity("state", "users")
        except ResourceNotFoundError:
            return None, None
    return row.get("DeltaLink") or None, row.get("LastFullAt")


async def save_delta_state(storage: Storage, *, delta_link: str | None, full_at: datetime | None) -> None:
    """Keep the next deltaLink (None clears it: the next run reads fully) and, after a full read, its time."""
    row: dict[str, Any] = {"PartitionKey": "state", "RowKey": "users", "DeltaLink": delta_link or ""}
    if full_at is not None:
        row["LastFullAt"] = full_at
    with transient("save the sweep state"):
        await storage.table(RUNS_TABLE).upsert_entity(row)


@dataclass
class DriftWriter:
    """Buffers drift rows and writes them in 100-row transactions; keeps the CSV report (drifted users only)."""

    storage: Storage
    run_id: str
    buffered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    report: io.StringIO = field(default_factory=io.StringIO)

    def __post_init__(self) -> None:
        csv.writer(self.report).writerow(CSV_COLUMNS)

    async def add(self, user: UserFacts, drifts: Sequence[Drift], fix: str | None, *, key_suffix: str = "") -> None:
        """One row per drifted user (provisioning findings get their own row, ``key_suffix``)."""
        kinds = ",".join(dict.fromkeys(d.kind for d in drifts))
        skus = ",".join(dict.fromkeys(d.sku for d in drifts if d.sku))
        details = "; ".join(f"{d.kind} {d.sku}: {d.detail}".strip() for d in drifts)
        partition = drift_partition(self.run_id, user.id)
        row = {
            "PartitionKey": partition,
            "RowKey": table_key(user.id) + key_suffix,
            "UserPrincipalName": user.user_principal_name,
            "Kinds": kinds,
            "Skus": skus,
            "Fix": fix or "",
            "Details": details[:4000],
        }
        rows = self.buffered.setdefault(partition, [])
        rows.append(row)
        csv.writer(self.report).writerow(
            (self.run_id, user.id, user.user_principal_name, kinds, skus, fix or "", details)
        )
        if len(rows) >= TX_SIZE:
            await self._flush(partition)

    async def _flush(self, partition: str) -> None:
        rows = self.buffered.pop(partition, [])
        if not rows:
            return
        if len(self.pending) >= TX_IN_FLIGHT:
            await asyncio.wait(self.pending, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.ensure_future(self._submit(rows))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _submit(self, rows: list[dict[str, Any]]) -> None:
        operations = [(TransactionOperation.UPSERT, row) for row in rows]
        with transient("write sweep drift rows"):
            await self.storage.table(DRIFT_TABLE).submit_transaction(operations)

    async def close(self) -> None:
        """Write what is left and wait for every transaction."""
        for partition in list(self.buffered):
            await self._flush(partition)
        if self.pending:
            done = await asyncio.gather(*self.pending, return_exceptions=True)
            if errors := [e for e in done if isinstance(e, BaseException)]:
                raise errors[0]


def drift_partition(run_id: str, user_id: str) -> str:
    """``<run id>-<last hex digit of the user id>``: 16 partitions per run spread the write load (a single hot
    partition is throttled in Azure and slow in Azurite); ``drift_rows`` reads them back with one range query."""
    return f"{run_id}-{(user_id[-1:] or '0').lower()}"


async def drift_rows(storage: Storage, run_id: str) -> list[dict[str, Any]]:
    """Every SweepDrift row of a run."""
    rows = storage.table(DRIFT_TABLE).query_entities(
        "PartitionKey ge @low and PartitionKey lt @high", parameters={"low": f"{run_id}-", "high": f"{run_id}."}
    )
    return [dict(row) async for row in rows]


async def upload_report(blobs: BlobServiceClient | None, run_id: str, text: str) -> str:
    """The CSV report as blob sweep-reports/<run id>.csv; returns its name (or "" without blob storage)."""
    if blobs is None:
        return ""
    container = blobs.get_container_client(REPORT_CONTAINER)
    with transient("upload the sweep report"):
        with suppress(ResourceExistsError):
            await container.create_container()
        name = f"{run_id}.csv"
        await container.upload_blob(name, text.encode(), overwrite=True)
    return f"{REPORT_CONTAINER}/{name}"


async def record_run(storage: Storage, summary: dict[str, Any], *, started: datetime) -> None:
    """One SweepRuns row per run, newest first."""
    row = {"PartitionKey": "runs", "RowKey": f"{newest_first(started)}-{summary['runId']}"}
    row.update({k[0].upper() + k[1:]: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in summary.items()})
    with transient("record the sweep run"):
        await storage.table(RUNS_TABLE).upsert_entity(row)


async def latest_runs(storage: Storage, limit: int = 10) -> list[dict[str, Any]]:
    """The most recent run summaries."""
    rows = storage.table(RUNS_TABLE).query_entities("PartitionKey eq 'runs'", results_per_page=limit)
    found: list[dict[str, Any]] = []
    async for row in rows:
        found.append(dict(row))
        if len(found) >= limit:
            break
    return found
