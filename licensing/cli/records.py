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
from licensing.core.records import UNIDENTIFIED, StatusRecord
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
        users = list(dict.fromkeys(r.user_key for r in rows if r.user_key != UNIDENTIFIED))
        for user in users:
            request_id = f"requeue-{uuid.uuid4().hex[:12]}"
            await storage.send(LICENSE_REQUESTS_QUEUE, {"user": user, "source": "manual", "requestId": request_id})
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
            result = await run_sweep(
                services, mode="report" if args.dry_run else None, force_full=args.full, progress=progress
            )
    finally:
        await storage.close()
    if args.out:
        await asyncio.to_thread(Path(args.out).write_text, result.csv, encoding="utf-8")
    if args.format == "csv":
        sys.stdout.write(result.csv)
    else:
        sweep_render.sweep_summary(result.summary(), fmt=args.format)
    return 0 if result.read != "skipped" else EXIT_ERROR
