"""What `licensing sweep` prints for a run: its notes and, for a failed run, why it stopped."""

from __future__ import annotations

from typing import Any

import pytest

from licensing.cli.sweep_render import sweep_summary


def summary(**changes: Any) -> dict[str, Any]:
    """A delta run's summary as SweepResult.summary() gives it."""
    base: dict[str, Any] = {
        "runId": "abc123",
        "mode": "report",
        "dryRun": False,
        "outcome": "completed",
        "failure": "",
        "read": "delta",
        "notes": [],
        "usersSeen": 3,
        "usersDrifted": 1,
        "drift": {"missing-license": 1},
        "fixesEnqueued": 0,
        "graphRequests": 4,
        "report": "",
    }
    return base | changes


def test_notes_are_printed_after_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """A run that kept its deltaLink says so under the table (markup in a note is printed, not obeyed)."""
    note = "1 changed user(s) not read (429 x1): the deltaLink was kept [bold]"
    sweep_summary(summary(notes=[note]), fmt="table")
    out = capsys.readouterr().out
    assert out.index("users scanned") < out.index(f"note: {note}")
    assert "failed:" not in out


def test_a_failed_run_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    """outcome failed: the reason is printed in the table view and kept in the JSON view."""
    reason = "Graph refused to read subscribedSkus: 429 (Retry-After 300 s, more than the 170 s left to wait)"
    sweep_summary(summary(outcome="failed", failure=reason), fmt="table")
    assert f"failed: {reason}" in capsys.readouterr().out
    sweep_summary(summary(outcome="failed", failure=reason), fmt="json")
    assert f'"failure": "{reason}"' in capsys.readouterr().out
