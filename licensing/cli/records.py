"""The CLI's storage-backed commands: status and requeue (the LicenseStatus table) and sweep.

A table that does not exist yet (fresh storage: nothing was ever recorded) reads as empty, not as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from azure.core.exceptions import ResourceNotFoundError

from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.storage import counters
from licensing.adapters.storage.account import Storage, transient
from licensing.cli import records_render, sweep_render
from licensing.cli.since import cutoff
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import UNIDENTIFIED, StatusRecord, requeue_message
from licensing.services.context import Services
from licensing.services.sweep import run_sweep
from licensing.settings import Settings

EXIT_ERROR = 3
NO_TABLE = "; the table does not exist yet: nothing has been recorded"
T = TypeVar("T")


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Storage]:
    """The app's storage (AzureWebJobsStorage), closed afterwards."""
    storage = Storage.from_settings(settings.require_storage())
    try:
        yield storage
    finally:
        await storage.close()


async def read_table(what: str, read: Callable[[], Awaitable[list[T]]]) -> tuple[list[T], str]:
    """``read()``'s rows and a note: a missing table is no rows (and says so); unreachable storage is one line,
    exit 3."""
    with transient(f"read the {what} table"):
        try:
            return await read(), ""
        except ResourceNotFoundError:
            return [], NO_TABLE


async def _rows(args: argparse.Namespace, storage: Storage) -> tuple[list[StatusRecord], str]:
    oldest = cutoff(args.since, now=datetime.now(UTC))

    async def read() -> list[StatusRecord]:
        return [
            r
            async for r in storage.statuses(args.user, outcome=args.outcome)
            if not r.sku.startswith("~") and (oldest is None or r.updated_at >= oldest)
        ]

    rows, note = await read_table("LicenseStatus", read)
    return sorted(rows, key=lambda r: r.updated_at, reverse=True), note


async def status(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """The LicenseStatus table, newest first, filtered by outcome, age and user; --recount first recounts the
    status page's totals (the daily snapshot does it nightly; after an upgrade the totals start from zero)."""
    async with opened(settings) as storage:
        if args.recount:
            totals = await counters.reconcile(storage)
            records_render.recounted(totals, fmt=args.format)
            return 0
        rows, note = await _rows(args, storage)
    records_render.statuses(rows, fmt=args.format, ids=args.ids, note=note)
    return 0


async def requeue(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Send failed (or blocked) users back to license-requests as manual requests."""
    async with opened(settings) as storage:
        rows, _ = await _rows(args, storage)
        # A message that named no user (_unidentified) cannot succeed on a second try: it stays recorded.
        # Rows are newest first: each user goes back once, as the newest request kept on their rows (a blocked
        # HR hire with its attributes), else as a bare manual request.
        newest: dict[str, StatusRecord] = {}
        for row in rows:
            if row.user_key != UNIDENTIFIED and (row.user_key not in newest or not newest[row.user_key].request):
                newest[row.user_key] = row
        for row in newest.values():
            message = requeue_message(row, tag=f"requeue-{uuid.uuid4().hex[:12]}")
            await storage.send(LICENSE_REQUESTS_QUEUE, message)
    records_render.requeued(list(newest.values()), args.outcome, fmt=args.format)
    return 0


async def sweep(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """One sweep now; --csv prints the drift report (one row per finding), --out FILE also saves it."""
    async with opened(settings) as storage:
        services = Services(settings, graph, storage)
        if settings.require_storage().connection_string:
            # Azurite or keys: create what is missing. In Azure the deployment made them (main.bicep), and an
            # admin's roles (docs/operations.md#roles-per-command) rightly cannot create queues or tables.
            await storage.ensure_created()
        with sweep_render.sweep_progress(enabled=args.format == "table") as progress:
            result = await run_sweep(services, dry_run=args.dry_run, force_full=args.full, progress=progress)
    if args.out:
        await asyncio.to_thread(Path(args.out).write_text, result.csv, encoding="utf-8")
    if args.format == "csv":
        sys.stdout.write(result.csv)
    else:
        sweep_render.sweep_summary(result.summary(), fmt=args.format)
    return 0 if result.read != "skipped" else EXIT_ERROR
