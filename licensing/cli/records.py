"""The CLI's storage-backed commands: status and requeue (the LicenseStatus table) and sweep."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.storage.account import Storage, transient
from licensing.cli import render, sweep_render
from licensing.cli.users_file import CommandLineError
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import UNIDENTIFIED, StatusRecord, requeue_message
from licensing.services.context import Services
from licensing.services.sweep import run_sweep
from licensing.settings import Settings

EXIT_ERROR = 3


def age(text: str) -> timedelta:
    """``7d`` / ``12h`` / ``30m`` -> a timedelta; InvalidRequest says the accepted form."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise CommandLineError(f"--since {text!r}: use a number and d, h or m, e.g. 7d")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


async def _rows(args: argparse.Namespace, storage: Storage) -> list[StatusRecord]:
    cutoff = datetime.now(UTC) - age(args.since) if args.since else None
    with transient("read the LicenseStatus table"):  # unreachable storage: one line, exit 3
        rows = [
            r
            async for r in storage.statuses(args.user, outcome=args.outcome)
            if not r.sku.startswith("~") and (cutoff is None or r.updated_at >= cutoff)
        ]
    return sorted(rows, key=lambda r: r.updated_at, reverse=True)


async def status(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """The LicenseStatus table, newest first, filtered by outcome, age and user."""
    storage = Storage.from_settings(settings.require_storage())
    try:
        rows = await _rows(args, storage)
    finally:
        await storage.close()
    render.statuses(rows, fmt=args.format)
    return 0


async def requeue(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Send failed (or blocked) users back to license-requests as manual requests."""
    storage = Storage.from_settings(settings.require_storage())
    try:
        rows = await _rows(args, storage)
        # A message that named no user (_unidentified) cannot succeed on a second try: it stays recorded.
        # Rows are newest first: each user goes back once, as the newest request kept on their rows (a blocked
        # HR hire with its attributes), else as a bare manual request.
        newest: dict[str, StatusRecord] = {}
        for row in rows:
            if row.user_key != UNIDENTIFIED and (row.user_key not in newest or not newest[row.user_key].request):
                newest[row.user_key] = row
        users = list(newest)
        for row in newest.values():
            message = requeue_message(row, tag=f"requeue-{uuid.uuid4().hex[:12]}")
            await storage.send(LICENSE_REQUESTS_QUEUE, message)
    finally:
        await storage.close()
    render.requeued(users, args.outcome, fmt=args.format)
    return 0


async def sweep(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """One sweep now; --csv prints the drift report (one row per finding), --out FILE also saves it."""
    storage = Storage.from_settings(settings.require_storage())
    services = Services(settings, graph, storage)
    try:
        await storage.ensure_created()
        with sweep_render.sweep_progress(enabled=args.format == "table") as progress:
            result = await run_sweep(services, dry_run=args.dry_run, force_full=args.full, progress=progress)
    finally:
        await storage.close()
    if args.out:
        await asyncio.to_thread(Path(args.out).write_text, result.csv, encoding="utf-8")
    if args.format == "csv":
        sys.stdout.write(result.csv)
    else:
        sweep_render.sweep_summary(result.summary(), fmt=args.format)
    return 0 if result.read != "skipped" else EXIT_ERROR
