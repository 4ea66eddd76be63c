"""The status page's snapshot, read in constant time: the same handful of reads at 100 users or 100,000.

Outcome totals (with when they were last recounted), the per-day history and the recent failures come from the
counters kept at write time (adapters/storage/counters.py), never from a scan of LicenseStatus; the last sweeps
from the newest SweepRuns rows; the health from the queues' approximate counts and the subscription expiry
keep_alive recorded; the forecast from services/forecast.py. The plain data and the pure rules live in
overview_model.py.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from licensing.adapters.storage import counters
from licensing.adapters.storage.account import Storage, transient
from licensing.adapters.storage.queue_depths import queue_depths
from licensing.adapters.storage.sweep_store import latest_runs
from licensing.core.errors import PermanentError
from licensing.core.forecast import Forecast
from licensing.core.history import FAILURE_OUTCOMES
from licensing.services.context import Services
from licensing.services.forecast import take_forecast
from licensing.services.overview_health import Health, QueueDepth, subscription_health
from licensing.services.overview_model import (
    RECENT_FAILURES,
    Failure,
    SeatLine,
    Snapshot,
    SweepOverview,
    Tally,
    failure_of,
    is_request_level,
    ordered_outcomes,
    seat_lines,
    sweep_overview,
)
from licensing.services.subscriptions import recorded_expiry

__all__ = [
    "FAILURE_OUTCOMES",
    "RECENT_FAILURES",
    "Failure",
    "SeatLine",
    "Snapshot",
    "SweepOverview",
    "Tally",
    "failure_of",
    "is_request_level",
    "seat_lines",
    "sweep_overview",
    "take_snapshot",
]
HISTORY_DAYS = 30
SWEEPS_SHOWN = 30
FORECAST_DAYS = 30


async def take_snapshot(
    services: Services, *, limit: int = RECENT_FAILURES, days: int = HISTORY_DAYS, runs: int = SWEEPS_SHOWN
) -> Snapshot:
    """Read the catalog (cached like every other reader), the counters, the last runs and the health signals.

    Reads only: the seats chart draws the daily snapshots the daily_snapshot timer keeps (services/snapshots.py).
    TransientError from Graph or storage propagates: the HTTP function answers 503.
    """
    threshold = services.settings.low_seat_threshold
    catalog = await services.graph.catalog()
    read_at = services.graph.catalog_read_at
    now = services.clock()
    storage = services.storage
    with transient("read the status counters"):
        reads = asyncio.gather(
            _totals(storage),
            counters.history(storage, days=days, today=now.date()),
            counters.recent_failures(storage, limit=limit),
            latest_runs(storage, limit=runs),
            queue_depths(storage),
            recorded_expiry(storage),
        )
        # the forecast reads its own index and the cached catalog: alongside the counters, not after them
        read, (forecast, problem) = await asyncio.gather(reads, _forecast(services))
    (totals, recounted_at, uncounted), history, failed, run_rows, depths, expiry = read
    settings = services.settings
    configured = bool(settings.graph_notification_url and settings.graph_client_state)
    sweeps = (sweep_overview(row) for row in run_rows)
    return Snapshot(
        taken_at=now,
        low_seat_threshold=threshold,
        seats=seat_lines(catalog, threshold),
        outcomes=ordered_outcomes(totals),
        sweeps=tuple(s for s in sweeps if s is not None),
        failures=tuple(failure_of(r) for r in failed),
        history=history,
        health=Health(
            queues=tuple(QueueDepth(name, n) for name, n in depths),
            subscription=subscription_health(configured=configured, expires_at=expiry, now=now),
            seats_read_at=read_at,
            seats_age=now - read_at if read_at else None,
        ),
        forecast=forecast,
        forecast_problem=problem,
        recounted_at=recounted_at,
        rows_uncounted=uncounted,
    )


async def _totals(storage: Storage) -> tuple[dict[str, int], datetime | None, bool]:
    """The outcome totals, when they were last recounted, and whether rows may be missing from them."""
    totals, recounted_at = await asyncio.gather(counters.outcome_totals(storage), counters.last_reconciled(storage))
    # Before the first recount, rows written before the counters existed may be missing from the totals: one
    # more read (of one row) tells an empty table from one the page cannot vouch for.
    uncounted = recounted_at is None and (any(totals.values()) or await counters.any_status_row(storage))
    return totals, recounted_at, uncounted


async def _forecast(services: Services) -> tuple[Forecast | None, str]:
    """The forecast, or why there is none (an invalid policy file is shown, not a 500 for the whole page)."""
    try:
        return await take_forecast(services, days=FORECAST_DAYS), ""
    except PermanentError as exc:
        return None, exc.message
