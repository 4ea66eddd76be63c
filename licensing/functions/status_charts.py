"""The status page's three charts, built from a snapshot (pure): outcomes per day, seats used per SKU, sweep drift."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from licensing.core.charts import Chart, Series, line_chart, stacked_bars
from licensing.core.records import OUTCOMES
from licensing.services.overview_model import Snapshot

# One colour per outcome, the same every day (and close to what the CLI's tables use for each word).
OUTCOME_COLOURS = {
    "assigned": "#74c476",
    "verified": "#2ca02c",
    "pending": "#f2c12e",
    "action-required": "#ff7f0e",
    "blocked": "#9467bd",
    "failed": "#d62728",
    "rejected": "#8c564b",
    "removed": "#7f7f7f",
}


def outcomes_chart(snapshot: Snapshot) -> Chart:
    """Rows moving into each outcome per UTC day (the history's days, oldest first): one series per outcome."""
    days = snapshot.history
    series = _series(OUTCOMES, [p.outcomes for p in days], missing=0)
    return Chart(
        "outcomes-per-day",
        f"Outcomes recorded per day, last {len(days)} days (UTC)",
        "day (UTC)",
        "status rows",
        tuple(p.day.isoformat() for p in days),
        series,
        empty="Nothing recorded in these days",
    )


def seats_chart(snapshot: Snapshot) -> tuple[Chart, dict[str, int]]:
    """Seats consumed per SKU at each day's snapshot (a gap where a day has none), and each SKU's enabled seats
    now (the dashed ceiling). SKUs no longer subscribed but in the history still get their line."""
    days = snapshot.history
    series = _series([s.part_number for s in snapshot.seats], [p.seats_used for p in days], missing=None)
    ceilings = {s.part_number: s.enabled for s in snapshot.seats}
    chart = Chart(
        "seats-per-sku",
        f"Seats used per SKU, daily snapshots, last {len(days)} days (dashed: seats enabled now)",
        "day (UTC)",
        "seats consumed",
        tuple(p.day.isoformat() for p in days),
        series,
        empty="No seat snapshot yet",
    )
    return chart, ceilings


def drift_chart(snapshot: Snapshot) -> Chart:
    """Drift findings of the last sweeps, oldest on the left, stacked by kind (only kinds some run found)."""
    runs = tuple(reversed(snapshot.sweeps))
    series = tuple(s for s in _series((), [r.drift for r in runs], missing=0) if any(s.values))
    return Chart(
        "sweep-drift",
        f"Drift found by the last {len(runs)} sweeps, by kind",
        "sweep run (start, UTC)",
        "findings",
        tuple(_run_label(r.started, r.run_id) for r in runs),
        series,
        empty="No drift found" if runs else "No sweep has run yet",
    )


def charts_svg(snapshot: Snapshot) -> dict[str, str]:
    """The three charts as inline SVG markup, by name (the template places them)."""
    seats, ceilings = seats_chart(snapshot)
    return {
        "outcomes": stacked_bars(outcomes_chart(snapshot), colours=OUTCOME_COLOURS),
        "seats": line_chart(seats, ceilings=ceilings),
        "drift": stacked_bars(drift_chart(snapshot)),
    }


def _series(
    first: Iterable[str], rows: Sequence[tuple[tuple[str, int], ...]], *, missing: int | None
) -> tuple[Series, ...]:
    """A series per name, ``first`` in order then any other name a row holds; a row without the name: ``missing``."""
    names = dict.fromkeys([*first, *(name for row in rows for name, _ in row)])
    found = [dict(row) for row in rows]
    return tuple(Series(name, tuple(row.get(name, missing) for row in found)) for name in names)


def _run_label(started: datetime | None, run_id: str) -> str:
    return f"{started:%m-%d %H:%M}" if started else run_id[:8]
