"""Six-field NCRONTAB validation (Azure Functions timer schedules)."""

import json
from pathlib import Path

import pytest

from licensing.core.cron import CronError, validate_ncrontab
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
