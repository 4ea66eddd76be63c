"""What `licensing verify` prints: a ServiceStatus table per user and SKU, or JSON / CSV in the CLI's vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from licensing.cli.output import Cell, Format, console, emit, esc, print_json, styled
from licensing.core.model import ObservedLicense
from licensing.core.verification import LicenseVerdict, PlanCheck


@dataclass(frozen=True, slots=True)
class SkuCheck:
    """One SKU the policy expects, as `verify` reports it: the core's verdict, or ``not-assigned`` when the user
    does not hold the SKU at all (a user never licensed is not a failed assignment)."""

    sku: str
    sku_id: str
    outcome: str
    reason: str
    checks: tuple[PlanCheck, ...] = ()
    plan_source: str = ""

    @classmethod
    def of(cls, verdict: LicenseVerdict) -> SkuCheck:
        """The core verdict as it is."""
        v = verdict
        return cls(v.part_number, v.sku_id, v.outcome, v.reason, v.checks, v.source)


@dataclass(frozen=True, slots=True)
class UserVerification:
    """One user's ServiceStatus check against the policy."""

    user: str
    user_id: str
    rule: str
    verdicts: tuple[SkuCheck, ...]
    others: tuple[ObservedLicense, ...]
    error: str = ""
    grouped: frozenset[str] = frozenset()  # SKU ids among ``others`` held through a group (the group manages them)

    @property
    def as_expected(self) -> bool:
        """Every license the policy expects is verified."""
        return not self.error and all(v.outcome == "verified" for v in self.verdicts)


COLUMNS = ("user", "userId", "rule", "sku", "outcome", "plan", "status", "expected", "reason")


def _verification_json(r: UserVerification) -> dict[str, Any]:
    return {
        "user": r.user,
        "userId": r.user_id or None,
        "rule": r.rule or None,
        "asExpected": r.as_expected,
        "error": r.error or None,
        "licenses": [_verdict_json(v) for v in r.verdicts],
        "unmanaged": [_unmanaged_json(o, via_group=o.sku_id in r.grouped) for o in r.others],
    }


def _verdict_json(v: SkuCheck) -> dict[str, Any]:
    plans = [{"plan": c.name, "planId": c.plan_id, "status": c.status, "expected": c.expected} for c in v.checks]
    who = {"sku": v.sku, "skuId": v.sku_id, "outcome": v.outcome, "reason": v.reason}
    return {**who, "planSource": v.plan_source or None, "planChecks": plans}


def _unmanaged_json(o: ObservedLicense, *, via_group: bool) -> dict[str, Any]:
    plans = {p.name: p.status for p in o.plans}
    return {"sku": o.part_number, "skuId": o.sku_id, "viaGroup": via_group, "planStatuses": plans}


def _rows(r: UserVerification) -> list[list[Cell]]:
    who: list[Cell] = [r.user, r.user_id, r.rule]
    rows: list[list[Cell]] = [[*who, "", "error", "", "", "", r.error]] if r.error else []
    for v in r.verdicts:
        if not v.checks:  # nothing to list plan by plan (not assigned, a group in error): one row with the reason
            rows.append([*who, v.sku, v.outcome, "", "", "", v.reason])
        reason = "" if v.outcome == "verified" else v.reason
        rows += [[*who, v.sku, v.outcome, c.name, c.status, c.expected, reason] for c in v.checks]
    for o in r.others:
        held = "group" if o.sku_id in r.grouped else "unmanaged"
        rows += [[*who, o.part_number, held, p.name, p.status, "", ""] for p in o.plans]
    return rows


def verifications(results: Sequence[UserVerification], fmt: Format) -> None:
    """A ServiceStatus table per user and SKU (like (Get-MsolUser).Licenses.ServiceStatus)."""
    if fmt == "json":
        print_json([_verification_json(r) for r in results])
        return
    if fmt == "csv":
        emit("csv", title="", columns=COLUMNS, rows=[row for r in results for row in _rows(r)])
        return
    out = console()
    for r in results:
        if r.error:
            out.print(f"[red]{esc(r.user)}: {esc(r.error)}[/]")
        for v in r.verdicts:
            title = f"{esc(r.user)}: {esc(v.sku)} ({styled(v.outcome)}, rule {esc(r.rule)})"
            if v.checks:
                rows: list[list[Cell]] = [[c.name, c.status, c.expected] for c in v.checks]
                emit("table", title=title, columns=["plan", "status", "expected"], rows=rows)
            else:
                out.print(title)
            if v.outcome != "verified":
                out.print(f"  {esc(v.reason)}")
        for o in r.others:
            how = "held via a group; the group manages it" if o.sku_id in r.grouped else "not managed by the policy"
            title = f"{esc(r.user)}: {esc(o.part_number)} ({how})"
            emit("table", title=title, columns=["plan", "status"], rows=[[p.name, p.status] for p in o.plans])
    if len(results) > 1:
        good = sum(r.as_expected for r in results)
        out.print(f"{good} of {len(results)} users as expected")
