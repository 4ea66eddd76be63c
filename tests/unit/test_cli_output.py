"""The CLI's pure output rules: column widths that fit without cutting words, CSV cells, --since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from licensing.cli.output import csv_cell, fit_widths
from licensing.cli.since import cutoff
from licensing.cli.users_file import CommandLineError

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
UPN = "a.rather.long.name@contoso.onmicrosoft.com"
REASON = "the policy disables INTUNE_A but it is Success on this user (plan states from licenseDetails)"


def test_a_table_that_fits_keeps_its_natural_widths() -> None:
    """Columns that fit on one line each are left to the table (None)."""
    assert fit_widths([["user", "x@y"], ["outcome", "verified"]], room=40) is None


def test_narrow_room_wraps_the_reason_and_keeps_every_word_whole() -> None:
    """Each column keeps its longest word; the spare room goes to the text that would take the most lines."""
    widths = fit_widths([["user", UPN], ["sku", "EMS"], ["reason", REASON]], room=70)
    assert widths is not None
    assert sum(widths) <= 70
    assert widths[:2] == [len(UPN), 3]
    assert widths[2] >= max(len(w) for w in REASON.split())


def test_words_wider_than_the_room_widen_the_table_rather_than_cut_an_id() -> None:
    """When even the longest words do not fit, the widths are those words: a GUID is never folded."""
    guid = "0f7c3e2a-1b2c-4d5e-8f90-123456789abc"
    assert fit_widths([["userId", guid], ["user", UPN]], room=40) == [len(guid), len(UPN)]


def test_csv_cells_use_the_json_vocabulary() -> None:
    """Lists space-separated, mappings name=value, booleans true/false, times ISO 8601, None empty."""
    assert [csv_cell(v) for v in (["A", "B"], {"A": "Success"}, True, NOW, None, 3)] == [
        "A B",
        "A=Success",
        "true",
        NOW.isoformat(),
        "",
        3,
    ]


@pytest.mark.parametrize(
    ("text", "oldest"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2025-02-01", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-02-01T08:00+01:00", datetime(2025, 2, 1, 7, tzinfo=UTC)),
    ],
)
def test_since_takes_an_age_or_a_date_in_utc(text: str, oldest: datetime) -> None:
    """--since 7d/12h/30m counts back from now; a date without an offset is UTC."""
    assert cutoff(text, now=NOW) == oldest


def test_since_names_the_accepted_forms() -> None:
    """Anything else is a command-line error (exit 2) that shows both forms."""
    with pytest.raises(CommandLineError, match=r"use a number and d, h or m, e.g. 7d, or a date"):
        cutoff("soon", now=NOW)
