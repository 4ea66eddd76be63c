"""The status history's pure rules: counter deltas, counter columns, and folding rows into day points."""

from __future__ import annotations

from collections import Counter
from datetime import date

from licensing.core.history import (
    FAILURE_OUTCOMES,
    column_outcome,
    counted,
    day_points,
    fold_counters,
    fold_days,
    moves,
    ordered,
    outcome_column,
)
from licensing.core.records import LEAVER, OUTCOMES, REQUEST_LEVEL
from licensing.services import overview


def test_a_change_of_outcome_moves_one_count_from_the_old_to_the_new() -> None:
    """pending -> verified is pending -1, verified +1; a create is +1 only, a delete -1 only."""
    assert moves("pending", "verified") == {"pending": -1, "verified": 1}
    assert moves(None, "failed") == {"failed": 1}
    assert moves("removed", None) == {"removed": -1}


def test_rewriting_the_same_outcome_moves_nothing() -> None:
    """A newer row with the same outcome (a re-check) leaves the counters alone."""
    assert moves("verified", "verified") == {}
    assert moves(None, None) == {}


def test_the_tombstone_is_not_counted_and_request_level_rows_are() -> None:
    """The counting rules of overview.Tally: ~leaver is a marker, ``-`` and ``message-<id>`` rows count."""
    assert not counted(LEAVER)
    assert counted(REQUEST_LEVEL)
    assert counted("message-42")
    assert counted("EMS")


def test_failure_outcomes_are_those_of_the_status_page() -> None:
    """The storage adapter indexes exactly the outcomes the page lists as failures."""
    assert FAILURE_OUTCOMES == overview.FAILURE_OUTCOMES


def test_counter_columns_are_table_property_names_and_read_back() -> None:
    """``action-required`` is stored as ``n_action_required`` (no hyphen) and read back as the outcome."""
    assert outcome_column("action-required") == "n_action_required"
    assert all(column_outcome(outcome_column(o)) == o for o in OUTCOMES)
    assert column_outcome("RowKey") is None
    assert column_outcome("Timestamp") is None


def test_shards_sum_and_other_properties_are_ignored() -> None:
    """The totals are the sum over the shard rows; keys and timestamps are not counts."""
    shards = [
        {"PartitionKey": "counters", "RowKey": "total-00", "n_verified": 3, "n_pending": -1},
        {"PartitionKey": "counters", "RowKey": "total-05", "n_pending": 2, "n_action_required": 1},
    ]
    assert fold_counters(shards) == Counter({"verified": 3, "pending": 1, "action-required": 1})


def test_totals_list_every_known_outcome_in_lifecycle_order_then_unexpected_ones() -> None:
    """Zeros are kept for known outcomes; an unknown outcome shows only when it has a count."""
    totals = ordered({"verified": 2, "weird": 1, "odd": 0})
    assert list(totals) == [*OUTCOMES, "weird"]
    assert totals["verified"] == 2
    assert totals["assigned"] == 0


def test_day_rows_are_summed_per_day_across_shards() -> None:
    """``day-<date>-<shard>`` rows of one day add up."""
    rows = [
        {"RowKey": "day-2026-12-01-00", "n_failed": 1},
        {"RowKey": "day-2026-12-01-07", "n_failed": 2, "n_verified": 1},
        {"RowKey": "day-2026-11-30-03", "n_assigned": 4},
    ]
    assert fold_days(rows) == {
        date(2026, 12, 1): Counter({"failed": 3, "verified": 1}),
        date(2026, 11, 30): Counter({"assigned": 4}),
    }


def test_history_has_exactly_the_asked_days_oldest_first_with_zeros() -> None:
    """``days`` points ending today; a day with nothing recorded has every outcome at zero and no seats."""
    today = date(2026, 3, 1)
    points = day_points(
        days=3,
        today=today,
        recorded={date(2026, 2, 27): {"verified": 5}, date(2026, 1, 1): {"verified": 9}},
        seats={today: {"ems": 7, "AAD_PREMIUM": 2}},
    )
    assert [p.day for p in points] == [date(2026, 2, 27), date(2026, 2, 28), today]  # across the month end
    assert [dict(p.outcomes)["verified"] for p in points] == [5, 0, 0]
    assert [name for name, _ in points[1].outcomes] == list(OUTCOMES)
    assert [p.seats_used for p in points] == [(), (), (("AAD_PREMIUM", 2), ("ems", 7))]


def test_outcomes_outside_the_known_set_are_left_out_of_the_chart() -> None:
    """A point's outcomes are exactly OUTCOMES: the chart has one series per known outcome."""
    [point] = day_points(days=1, today=date(2026, 3, 1), recorded={date(2026, 3, 1): {"weird": 3}}, seats={})
    assert [name for name, _ in point.outcomes] == list(OUTCOMES)
    assert sum(n for _, n in point.outcomes) == 0
