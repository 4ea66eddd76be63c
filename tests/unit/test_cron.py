"""Six-field NCRONTAB validation (Azure Functions timer schedules)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from licensing.core.cron import CronError, next_occurrence, validate_ncrontab
from licensing.functions.timers import RELEASE_SCHEDULE, SUBSCRIPTION_SCHEDULE

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("expression", ["0 0 2 * * *", "0 */15 * * * *", "0 7 * * * *", "30 5 1-5 * jan-mar mon"])
def test_valid_six_field_expressions(expression: str) -> None:
    """Typical schedules validate."""
    assert len(validate_ncrontab(expression)) == 6


@pytest.mark.parametrize(
    ("expression", "message"),
    [("0 2 * * *", "need six"), ("0 61 * * * *", "minute"), ("0 0 25 * * *", "hour"), ("0 0 0 * * 8", "day-of-week")],
)
def test_invalid_expressions_name_the_field(expression: str, message: str) -> None:
    """A five-field Unix cron or a value out of range says what is wrong."""
    with pytest.raises(CronError, match=message):
        validate_ncrontab(expression)


def test_every_timer_schedule_of_the_app_parses() -> None:
    """The fixed schedules and the SWEEP_SCHEDULE default in the sample settings are six-field NCRONTAB."""
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    for expression in (RELEASE_SCHEDULE, SUBSCRIPTION_SCHEDULE, sample["SWEEP_SCHEDULE"]):
        validate_ncrontab(expression)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("0 0 2 * * *", "2026-03-14T10:07:30.5", "2026-03-15T02:00:00"),  # the sweep's default: tomorrow 02:00
        ("0 */15 * * * *", "2026-03-14T10:15:00", "2026-03-14T10:30:00"),  # strictly after, never the same second
        ("0 7 * * * *", "2026-12-31T23:59:59", "2027-01-01T00:07:00"),
        ("0 30 9 * * mon-fri", "2026-03-14T12:00:00", "2026-03-16T09:30:00"),  # Saturday -> Monday
        ("0 0 12 13 * fri", "2026-03-14T00:00:00", "2026-11-13T12:00:00"),  # day AND weekday, as NCrontab
        ("5/20 * * * * *", "2026-03-14T10:07:46", "2026-03-14T10:08:05"),
        ("0 0 0 29 feb *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ],
)
def test_timers_fire_at_the_next_ncrontab_occurrence(schedule: str, after: str, expected: str) -> None:
    """The next six-field NCRONTAB occurrence in UTC, as the local timer loop (make run) fires it."""
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert next_occurrence(schedule, start) == datetime.fromisoformat(expected).replace(tzinfo=UTC)
