"""Pure status-page snapshot rules: what counts, which failures show, seats and the sweep summary."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

from licensing.core.drift import DRIFT_KINDS
from licensing.core.history import FAILURE_OUTCOMES as INDEXED
from licensing.core.model import Catalog
from licensing.core.records import LEAVER, OUTCOMES, REQUEST_LEVEL, Outcome, StatusRecord
from licensing.services.overview import FAILURE_OUTCOMES
from licensing.services.overview_health import QueueDepth, duration, subscription_health
from licensing.services.overview_model import Tally, ordered_outcomes, seat_lines, sweep_overview
from tests.unit.catalog import catalog

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def row(user: str, sku: str, outcome: str, *, minutes: int = 0, reason: str = "") -> StatusRecord:
    # cast: one test stores an outcome a newer version might write
    return StatusRecord(
        user,
        sku,
        f"{user}@contoso.example",
        cast("Outcome", outcome),
        reason,
        "r1",
        "hr",
        updated_at=T0 + timedelta(minutes=minutes),
    )


def test_outcomes_count_every_row_but_the_leaver_tombstone() -> None:
    """Per-SKU and request-level rows count once each; the ~leaver marker does not count as 'removed'."""
    tally = Tally()
    for r in (
        row("a", "EMS", "verified"),
        row("b", "EMS", "verified"),
        row("b", "INTUNE_A_D", "pending"),
        row("c", "EMS", "removed"),
        row("c", LEAVER, "removed"),
        row("ghost", REQUEST_LEVEL, "rejected"),
        row("_unidentified", "message-42", "rejected"),
        row("d", "EMSPREMIUM", "blocked"),
    ):
        tally.add(r)
    counts = dict(tally.outcomes())
    assert counts == {
        "assigned": 0,
        "verified": 2,
        "pending": 1,
        "action-required": 0,
        "blocked": 1,
        "failed": 0,
        "rejected": 2,
        "removed": 1,
    }
    assert [o for o, _ in tally.outcomes()] == list(OUTCOMES)


def test_an_unexpected_outcome_is_counted_after_the_known_ones() -> None:
    """A value written by a newer version is shown, not dropped."""
    tally = Tally()
    tally.add(row("a", "EMS", "paused"))
    assert tally.outcomes()[-1] == ("paused", 1)


def test_failures_are_the_newest_failed_blocked_or_rejected_rows_newest_first() -> None:
    """Only failure outcomes, capped at the limit, newest first; request-level rows have no SKU."""
    tally = Tally(limit=3)
    tally.add(row("ok", "EMS", "verified", minutes=99))
    for minute, outcome in enumerate(("failed", "blocked", "rejected", "failed", "blocked")):
        tally.add(row(f"u{minute}", "EMS" if minute % 2 else REQUEST_LEVEL, outcome, minutes=minute))
    failures = tally.failures()
    assert [f.user_key for f in failures] == ["u4", "u3", "u2"]
    assert [f.sku for f in failures] == [None, "EMS", None]
    assert [f.outcome for f in failures] == ["blocked", "failed", "rejected"]


def test_a_zero_limit_keeps_counting_and_lists_no_failures() -> None:
    """limit=0 is a valid 'counts only' snapshot."""
    tally = Tally(limit=0)
    tally.add(row("a", "EMS", "failed"))
    assert dict(tally.outcomes())["failed"] == 1
    assert tally.failures() == ()


def test_a_sku_is_low_when_fewer_than_the_threshold_are_free() -> None:
    """Same rule as the SeatsLow warning: free < threshold; exactly the threshold is not low."""
    lines = {s.part_number: s for s in seat_lines(catalog(ems_free=5, premium_free=0, edu_free=4), threshold=5)}
    assert (lines["EMS"].free, lines["EMS"].low) == (5, False)
    assert (lines["INTUNE_EDU"].free, lines["INTUNE_EDU"].low) == (4, True)
    assert (lines["EMSPREMIUM"].enabled, lines["EMSPREMIUM"].consumed, lines["EMSPREMIUM"].low) == (2, 2, True)
    assert list(lines) == sorted(lines)


def test_sweep_summary_lists_every_kind_and_keeps_unknown_ones() -> None:
    """The run row's JSON drift becomes (kind, findings) for every known kind, zeros included, then extras."""
    drift_json = '{"missing-license": 3, "reclaim": 1, "new-kind": 2}'
    run = sweep_overview(
        {
            "RunId": "abc",
            "Mode": "report",
            "Read": "full",
            "Started": T0,
            "UsersSeen": 36,
            "UsersDrifted": 4,
            "Drift": drift_json,
        }
    )
    assert run is not None
    assert (run.run_id, run.mode, run.read, run.users_seen, run.users_drifted, run.ended) == (
        "abc",
        "report",
        "full",
        36,
        4,
        None,
    )
    drift = dict(run.drift)
    assert [k for k, _ in run.drift] == [*DRIFT_KINDS, "new-kind"]
    assert (drift["missing-license"], drift["reclaim"], drift["no-rule"], drift["new-kind"]) == (3, 1, 0, 2)


def test_no_sweep_run_means_no_summary() -> None:
    """Before the first sweep there is nothing to show."""
    assert sweep_overview(None) is None


def test_action_required_rows_are_counted_and_listed_with_the_failures() -> None:
    """An admin-pending row needs someone like a failure does: counted under its own outcome and shown in the list."""
    tally = Tally()
    tally.add(row("a", "EMS", "action-required", reason="AAD_PREMIUM is PendingActivation: an admin must activate"))
    tally.add(row("b", "EMS", "verified"))
    assert dict(tally.outcomes())["action-required"] == 1
    [failure] = tally.failures()
    assert (failure.user_key, failure.outcome) == ("a", "action-required")


def test_grace_period_seats_show_and_count_as_free() -> None:
    """prepaidUnits.warning seats appear on the seat line and are part of its free count (and of low)."""
    full = catalog(ems_free=0)
    graced = Catalog(tuple(replace(s, warning=6) if s.part_number == "EMS" else s for s in full.skus))
    ems = {s.part_number: s for s in seat_lines(graced, threshold=5)}["EMS"]
    assert (ems.warning, ems.free, ems.low) == (6, 6, False)


def test_counter_totals_are_shown_in_lifecycle_order_with_zeros_and_extras() -> None:
    """The counters' totals become every known outcome (zeros included), then any unexpected one."""
    shown = ordered_outcomes({"verified": 3, "paused": 1})
    assert [o for o, _ in shown] == [*OUTCOMES, "paused"]
    assert dict(shown)["verified"] == 3
    assert dict(shown)["failed"] == 0


def test_the_page_lists_the_same_failure_outcomes_the_counters_index() -> None:
    """One set: what the page calls a failure is what the storage side keeps in its failure index."""
    assert FAILURE_OUTCOMES == INDEXED


def test_a_failed_sweep_run_keeps_its_reason() -> None:
    """A SweepRuns row with outcome failed shows why it stopped; an old row without Outcome reads as completed."""
    failed = sweep_overview({"RunId": "r", "Outcome": "failed", "Failure": "Graph throttled subscribedSkus"})
    assert failed is not None
    assert (failed.outcome, failed.failure) == ("failed", "Graph throttled subscribedSkus")
    old = sweep_overview({"RunId": "r0", "Drift": '{"reclaim": 2, "no-rule": 1}'})
    assert old is not None
    assert (old.outcome, old.failure, old.findings) == ("completed", "", 3)


def test_subscription_states_from_the_recorded_expiry() -> None:
    """Not configured, none recorded, expired, expiring within a day, or fine: each says so in words."""
    now = T0
    assert subscription_health(configured=False, expires_at=None, now=now).state == "not-configured"
    assert subscription_health(configured=True, expires_at=None, now=now).state == "none"
    expired = subscription_health(configured=True, expires_at=now - timedelta(hours=3), now=now)
    assert (expired.state, expired.text()) == ("expired", "expired 3 hours ago")
    soon = subscription_health(configured=True, expires_at=now + timedelta(hours=5), now=now)
    assert (soon.state, soon.text()) == ("expiring", "expires in 5 hours")
    fine = subscription_health(configured=True, expires_at=now + timedelta(days=2, hours=1), now=now)
    assert (fine.state, fine.text()) == ("ok", "expires in 2 days")


def test_durations_are_said_in_their_largest_whole_unit() -> None:
    """42 s, 5 min, 1 hour, 3 days; a negative span (clock skew) is 0 s."""
    spans = (timedelta(seconds=42), timedelta(minutes=5, seconds=59), timedelta(hours=1), timedelta(days=3))
    assert [duration(s) for s in spans] == ["42 s", "5 min", "1 hour", "3 days"]
    assert duration(timedelta(seconds=-5)) == "0 s"


def test_only_a_non_empty_poison_queue_is_alarming() -> None:
    """Work waiting in a normal queue is normal; one message in a -poison queue needs someone."""
    assert not QueueDepth("license-requests", 40).alarming
    assert not QueueDepth("license-requests-poison", 0).alarming
    assert QueueDepth("license-verify-poison", 1).alarming
