"""The status page's snapshot: seats per SKU, outcome counts, the last sweep's drift and the recent failures.

``take_snapshot`` does the reading (Graph's catalog, the LicenseStatus table, the newest SweepRuns row);
everything else here is pure, so the counting rules are tested with plain data.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from licensing.adapters.storage.account import transient
from licensing.adapters.storage.sweep_store import latest_runs
from licensing.core.drift import DRIFT_KINDS
from licensing.core.model import Catalog
from licensing.core.records import LEAVER, OUTCOMES, REQUEST_LEVEL, StatusRecord
from licensing.services.context import Services

# The rows that need someone: action-required waits for an admin as surely as a failure does.
FAILURE_OUTCOMES = frozenset({"failed", "blocked", "rejected", "action-required"})
OUTLINE = ("PartitionKey", "RowKey", "Outcome", "UpdatedAt")  # the status columns the counting reads
RECENT_FAILURES = 20


@dataclass(frozen=True, slots=True)
class SeatLine:
    """One subscribed SKU's seats; ``free`` counts grace-period (warning) seats; ``low`` below the threshold."""

    part_number: str
    sku_id: str
    enabled: int
    consumed: int
    suspended: int
    free: int
    low: bool
    warning: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed, blocked, rejected or action-required status row; ``sku`` is None for a request-level row."""

    user_key: str
    user_principal_name: str
    sku: str | None
    outcome: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SweepOverview:
    """The newest SweepRuns summary: what the run read, and its drift findings by kind (every known kind)."""

    run_id: str
    mode: str
    read: str
    started: datetime | None
    ended: datetime | None
    users_seen: int
    users_drifted: int
    fixes_enqueued: int
    drift: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the status page shows, taken at one moment."""

    taken_at: datetime
    low_seat_threshold: int
    seats: tuple[SeatLine, ...]
    outcomes: tuple[tuple[str, int], ...]
    sweep: SweepOverview | None
    failures: tuple[Failure, ...]


def is_request_level(sku: str) -> bool:
    """A status row about the request itself: ``-`` (user known or not), or ``message-<id>`` (no user named)."""
    return sku == REQUEST_LEVEL or sku.startswith("message-")


def seat_lines(catalog: Catalog, threshold: int) -> tuple[SeatLine, ...]:
    """Seats per SKU, by part number. ``low`` uses the rule seats.warn_low_seats warns by: free < threshold."""
    return tuple(
        SeatLine(s.part_number, s.id, s.enabled, s.consumed, s.suspended, s.free, s.low(threshold), s.warning)
        for s in sorted(catalog.skus, key=lambda s: s.part_number.casefold())
    )


@dataclass
class Tally:
    """Folds LicenseStatus rows one at a time (the table can be large): outcome counts and the newest failures.

    What counts: one per status row, i.e. the latest outcome of each user+SKU, plus request-level rows
    (``-`` / ``message-<id>``): those are the only trace of a request that ended before any SKU was chosen
    (unknown user, unreadable message, no usage location, poisoned), and onboarding deletes them once the
    user is fine, so they never double-count a user who later succeeded. The leaver tombstone (``~leaver``)
    is a marker that blocks relicensing, not an outcome, and is left out; the per-SKU ``removed`` rows of
    that leaver do count.
    """

    limit: int = RECENT_FAILURES
    counts: Counter[str] = field(default_factory=Counter)
    # a min-heap of the newest failures, the oldest of them on top
    _newest: list[tuple[datetime, int, StatusRecord]] = field(default_factory=list, init=False)
    _order: itertools.count[int] = field(default_factory=itertools.count, init=False)

    def add(self, row: StatusRecord) -> None:
        """Count one row (the tombstone is skipped) and keep it if it is among the newest failures."""
        if row.sku == LEAVER:
            return
        self.counts[row.outcome] += 1
        if row.outcome not in FAILURE_OUTCOMES or self.limit <= 0:
            return
        item = (row.updated_at, next(self._order), row)
        if len(self._newest) < self.limit:
            heapq.heappush(self._newest, item)
        else:
            heapq.heappushpop(self._newest, item)

    def outcomes(self) -> tuple[tuple[str, int], ...]:
        """Every known outcome (zeros included) in lifecycle order, then any unexpected value found."""
        extra = sorted(set(self.counts) - set(OUTCOMES))
        return tuple((outcome, self.counts[outcome]) for outcome in (*OUTCOMES, *extra))

    def newest(self) -> tuple[StatusRecord, ...]:
        """The rows of the newest failures, newest first."""
        return tuple(row for _, _, row in sorted(self._newest, reverse=True))

    def failures(self) -> tuple[Failure, ...]:
        """The newest failures, newest first."""
        return tuple(failure_of(row) for row in self.newest())


def failure_of(row: StatusRecord) -> Failure:
    """A row needing someone, as the page lists it (``sku`` None for a request-level row)."""
    sku = None if is_request_level(row.sku) else row.sku
    return Failure(row.user_key, row.user_principal_name, sku, row.outcome, row.reason, row.updated_at)


def sweep_overview(row: Mapping[str, Any] | None) -> SweepOverview | None:
    """A SweepRuns summary row (as sweep_store.record_run wrote it) as plain data; None when no run exists."""
    if row is None:
        return None
    raw = row.get("Drift") or "{}"
    found: dict[str, int] = json.loads(raw) if isinstance(raw, str) else dict(raw)
    kinds = (*DRIFT_KINDS, *sorted(set(found) - set(DRIFT_KINDS)))
    return SweepOverview(
        run_id=str(row.get("RunId", "")),
        mode=str(row.get("Mode", "")),
        read=str(row.get("Read", "")),
        started=row.get("Started"),
        ended=row.get("Ended"),
        users_seen=int(row.get("UsersSeen") or 0),
        users_drifted=int(row.get("UsersDrifted") or 0),
        fixes_enqueued=int(row.get("FixesEnqueued") or 0),
        drift=tuple((kind, int(found.get(kind, 0))) for kind in kinds),
    )


async def take_snapshot(services: Services, *, limit: int = RECENT_FAILURES) -> Snapshot:
    """Read the catalog (cached like every other reader), every status row and the newest sweep run.

    TransientError from Graph or storage propagates: the HTTP function answers 503.
    """
    threshold = services.settings.low_seat_threshold
    catalog = await services.graph.catalog()
    tally = Tally(limit)
    with transient("read the status table"):
        # Only the columns the counting needs: the table holds a row per user and SKU, and the wide columns
        # (reasons, plan statuses) of every row would triple the scan. The few failures shown are read whole.
        async for row in services.storage.statuses(select=OUTLINE):
            tally.add(row)
        rows = await asyncio.gather(*(services.storage.status(r.user_key, r.sku) for r in tally.newest()))
    with transient("read the sweep runs"):
        runs = await latest_runs(services.storage, limit=1)
    return Snapshot(
        taken_at=services.clock(),
        low_seat_threshold=threshold,
        seats=seat_lines(catalog, threshold),
        outcomes=tally.outcomes(),
        sweep=sweep_overview(runs[0] if runs else None),
        # A row that is no longer a failure (fixed since the scan) is left out rather than shown stale.
        failures=tuple(failure_of(r) for r in rows if r is not None and r.outcome in FAILURE_OUTCOMES),
    )
