"""The status page's history as plain data: per-day outcome counts and seat snapshots, and the counter rows' columns.

Pure: the storage adapter (adapters/storage/counters.py) reads the rows, these functions fold them into points.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from licensing.core.records import LEAVER, OUTCOMES

# The rows that need someone: action-required waits for an admin as surely as a failure does. Defined here, in the
# core, because both the storage adapter (the failure index) and the status page (services/overview) use it.
FAILURE_OUTCOMES = frozenset({"failed", "blocked", "rejected", "action-required"})
_COLUMN_PREFIX = "n_"


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One UTC day: the outcomes recorded that day and the seats in use at that day's snapshot."""

    day: date
    # outcomes recorded that day (rows moving INTO each outcome), every known outcome in
    # licensing.core.records.OUTCOMES order, zeros kept
    outcomes: tuple[tuple[str, int], ...]
    # SKU part number -> consumed seats at the day's snapshot; () if none
    seats_used: tuple[tuple[str, int], ...]


def outcome_column(outcome: str) -> str:
    """The counter row's property for an outcome: ``action-required`` -> ``n_action_required`` (a Table property
    name must be a C# identifier, so no hyphen)."""
    return _COLUMN_PREFIX + outcome.replace("-", "_")


def column_outcome(column: str) -> str | None:
    """The outcome a counter property counts, or None for any other property (keys, timestamps)."""
    if not column.startswith(_COLUMN_PREFIX):
        return None
    return column.removeprefix(_COLUMN_PREFIX).replace("_", "-")  # no outcome has "_": the reverse of outcome_column


def counted(sku: str) -> bool:
    """Whether a status row counts (overview.Tally's rule): every row but the leaver tombstone."""
    return sku != LEAVER


def moves(before: str | None, after: str | None) -> dict[str, int]:
    """The counter deltas of a status row going from ``before`` to ``after`` (None: no row): old -1, new +1,
    nothing when the outcome did not change."""
    if before == after:
        return {}
    delta: Counter[str] = Counter()
    if before is not None:
        delta[before] -= 1
    if after is not None:
        delta[after] += 1
    return {outcome: n for outcome, n in delta.items() if n}


def fold_counters(rows: Iterable[Mapping[str, object]]) -> Counter[str]:
    """The sum of the ``n_<outcome>`` properties over counter rows (shards of one total, or of one day)."""
    total: Counter[str] = Counter()
    for row in rows:
        for column, value in row.items():
            outcome = column_outcome(column)
            if outcome is not None and isinstance(value, int):
                total[outcome] += value
    return total


def fold_days(rows: Iterable[Mapping[str, Any]]) -> dict[date, Counter[str]]:
    """Per-day counter rows (RowKey ``day-<YYYY-MM-DD>-<shard>``) summed per day."""
    by_day: dict[date, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(date.fromisoformat(str(row["RowKey"])[4:14]), []).append(row)
    return {day: fold_counters(shards) for day, shards in by_day.items()}


def ordered(counts: Mapping[str, int]) -> dict[str, int]:
    """Every known outcome (zeros kept) in lifecycle order, then any other outcome with a non-zero count."""
    extra = sorted(o for o, n in counts.items() if o not in OUTCOMES and n)
    return {outcome: int(counts.get(outcome, 0)) for outcome in (*OUTCOMES, *extra)}


def day_points(
    *,
    days: int,
    today: date,
    recorded: Mapping[date, Mapping[str, int]],
    seats: Mapping[date, Mapping[str, int]],
) -> tuple[DayPoint, ...]:
    """Exactly ``days`` points, oldest first, ending with ``today``; zeros and () where nothing was recorded.

    ``recorded``: outcomes recorded per day; ``seats``: consumed seats per SKU part number per day's snapshot.
    Outcomes outside OUTCOMES are left out: the chart has one series per known outcome.
    """
    points = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        counts = recorded.get(day, {})
        points.append(
            DayPoint(
                day=day,
                outcomes=tuple((outcome, int(counts.get(outcome, 0))) for outcome in OUTCOMES),
                seats_used=tuple(sorted(seats.get(day, {}).items(), key=lambda kv: kv[0].casefold())),
            )
        )
    return tuple(points)
