"""`make demo` runs the real job: this runs the same code and checks what it reports."""

from __future__ import annotations

import io
import os
import re

import pytest
from rich.console import Console

from licensing.core.records import StatusRecord
from licensing.dev import demo
from licensing.dev.demo import render, run_demo


async def test_demo_onboards_the_batch_and_reports_every_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 20 users verified with INTUNE_A disabled, executives blocked, the unknown user and bad message rejected."""
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the demo sets app settings; keep them to this test
    output = io.StringIO()
    console = Console(file=output, width=220)
    rows = await run_demo(console)
    render(rows, console)
    by_outcome: dict[str, list[str]] = {}
    for row in rows:
        by_outcome.setdefault(row.outcome, []).append(f"{row.user_principal_name or row.user_key}/{row.sku}")
    assert len(by_outcome["verified"]) >= 20
    ems = [r for r in rows if r.sku == "EMS" and r.outcome == "verified"]
    assert all(r.plan_statuses["INTUNE_A"] == "Disabled" for r in ems)
    assert any(r.disabled_plans == ("INTUNE_A", "RMS_S_PREMIUM") for r in ems)  # contractors
    assert {r.sku for r in rows if r.outcome == "blocked"} == {"EMSPREMIUM"}
    rejected = {r.user_principal_name: r.reason for r in rows if r.outcome == "rejected"}
    assert "does not exist in the tenant" in rejected["nobody@contoso.onmicrosoft.com"]
    assert any("not valid JSON" in reason for reason in rejected.values())
    assert "poisoned: 0" in output.getvalue()
    assert "Onboarding results" in output.getvalue()


def test_demo_table_fits_the_terminal_and_wraps_between_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo` in an 80-column terminal: no line is wider, and every UPN, plan name and reason word is whole."""
    reason = " ".join(f"because{i:02d}" for i in range(40)) + " [/] [bold]"  # markup in data is printed, not obeyed
    plans = dict.fromkeys(("AAD_PREMIUM", "EXCHANGE_S_FOUNDATION", "ADALLOM_S_DISCOVERY"), "Success")
    rows = [
        StatusRecord(
            "u1",
            "EMS",
            "a.rather.long.name@contoso.onmicrosoft.com",
            "failed",
            reason,
            "r1",
            "hr",
            disabled_plans=("INTUNE_A",),
            plan_statuses={**plans, "INTUNE_A": "Disabled"},
        ),
        StatusRecord("u2", "EMSPREMIUM", "exec@contoso.onmicrosoft.com", "blocked", "no free seats", "r2", "hr"),
    ]

    async def finished(console: Console) -> list[StatusRecord]:
        return rows

    monkeypatch.setattr(demo, "run_demo", finished)
    monkeypatch.setenv("COLUMNS", "80")
    demo.main()
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    words = [*reason.split(), *plans, "INTUNE_A", "a.rather.long.name@contoso.onmicrosoft.com", "EMSPREMIUM"]
    assert [w for w in words if not re.search(rf"(?<!\S){re.escape(w)}(?![^\s,])", out)] == []
