"""The status page's snapshot as plain data, and the pure rules that build it (tested with plain data, no storage).

What the page shows: seats per SKU, outcome totals, the 30-day history, the last sweeps, recent failures, the
health of the pipeline (queue depths, the Graph subscription's expiry, the age of the seat data) and the forecast.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from licensing.core.drift import DRIFT_KINDS
from licensing.core.forecast import Forecast
from licensing.core.history import FAILURE_OUTCOMES, DayPoint, counted, ordered
from licensing.core.model import Catalog
from licensing.core.records import REQUEST_LEVEL, StatusRecord
from licensing.services.overview_health import Health

RECENT_FAILURES = 20
RECOUNT_AT = "23:55 UTC"  # the daily_snapshot timer, which recounts the totals (services/snapshots.py)


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
    """A SweepRuns summary: what the run read, its drift findings by kind (every known kind), and whether it
    completed (``failure`` says why a failed run stopped)."""

    run_id: str
    mode: str
    read: str
    started: datetime | None
    ended: datetime | None
    users_seen: int
    users_drifted: int
    fixes_enqueued: int
    drift: tuple[tuple[str, int], ...]
    outcome: str = "completed"
    failure: str = ""

    @property
    def findings(self) -> int:
        """Drift findings of every kind."""
        return sum(n for _, n in self.drift)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the status page shows, taken at one moment (``sweeps`` newest first)."""

    taken_at: datetime
    low_seat_threshold: int
    seats: tuple[SeatLine, ...]
    outcomes: tuple[tuple[str, int], ...]
    sweeps: tuple[SweepOverview, ...]
    failures: tuple[Failure, ...]
    history: tuple[DayPoint, ...] = ()
    health: Health | None = None
    forecast: Forecast | None = None
    forecast_problem: str = ""  # why there is no forecast (an invalid policy file), shown instead
    recounted_at: datetime | None = None  # when reconcile last recounted the outcome totals; None: never
    rows_uncounted: bool = False  # never recounted and LicenseStatus holds rows: some may predate the counters

    @property
    def totals_warning(self) -> str:
        """Why the outcome totals cannot be trusted yet (rows from before the counters, a negative total), or ""."""
        negative = any(n < 0 for _, n in self.outcomes)
        if self.rows_uncounted or (negative and self.recounted_at is None):
            why = "totals not recounted yet"
        elif negative:
            why = "a total is negative"  # a counter move lost since the recount (see counters.py)
        else:
            return ""
        return f"{why}: run `licensing status --recount` (or wait for the {RECOUNT_AT} snapshot)"

    @property
    def sweep(self) -> SweepOverview | None:
        """The newest run, or None before the first."""
        return self.sweeps[0] if self.sweeps else None


def is_request_level(sku: str) -> bool:
    """A status row about the request itself: ``-`` (user known or not), or ``message-<id>`` (no user named)."""
    return sku == REQUEST_LEVEL or sku.startswith("message-")


def seat_lines(catalog: Catalog, threshold: int) -> tuple[SeatLine, ...]:
    """Seats per SKU, by part number. ``low`` uses the rule seats.warn_low_seats warns by: free < threshold."""
    return tuple(
        SeatLine(s.part_number, s.id, s.enabled, s.consumed, s.suspended, s.free, s.low(threshold), s.warning)
        for s in sorted(catalog.skus, key=lambda s: s.part_number.casefold())
    )


def ordered_outcomes(counts: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """Every known outcome (zeros included) in lifecycle order, then any unexpected value found."""
    return tuple(ordered(counts).items())


@dataclass
class Tally:
    """Folds LicenseStatus rows one at a time: outcome counts and the newest failures. Not on the page's path any
    more (the counters are); the reference the counters are checked against (reconcile, bench, tests).

    What counts: one per status row, plus request-level rows (``-`` / ``message-<id>``); the leaver tombstone
    (``~leaver``) is a marker that blocks relicensing, not an outcome, and is left out.
    """

    limit: int = RECENT_FAILURES
    counts: Counter[str] = field(default_factory=Counter)
    # a min-heap of the newest failures, the oldest of them on top
    _newest: list[tuple[datetime, int, StatusRecord]] = field(default_factory=list, init=False)
    _order: itertools.count[int] = field(default_factory=itertools.count, init=False)

    def add(self, row: StatusRecord) -> None:
        """Count one row (the tombstone is skipped) and keep it if it is among the newest failures."""
        if not counted(row.sku):
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
        return ordered_outcomes(self.counts)

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
        outcome=str(row.get("Outcome") or "completed"),  # rows written before runs could fail have no Outcome
        failure=str(row.get("Failure") or ""),
    )
