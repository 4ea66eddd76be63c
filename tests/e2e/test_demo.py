"""`make demo` runs the real job: this runs the same code and checks what it reports."""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

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
