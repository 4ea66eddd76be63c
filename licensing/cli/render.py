"""What each CLI command prints: rich tables for people, JSON (--json) and CSV (--csv) for scripts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from licensing.cli.output import Cell, Format, console, emit, esc, print_json, styled
from licensing.core.admin_plans import GraphRequest, RemovalPlan
from licensing.core.model import Catalog, ObservedLicense, Sku
from licensing.core.planning import AssignmentPlan, DesiredLicense
from licensing.core.records import StatusRecord
from licensing.core.verification import LicenseVerdict


def skus(catalog: Catalog, *, plans: bool, fmt: Format, low: int) -> None:
    """Seats per SKU (Get-MsolAccountSku), with a warning column when fewer than ``low`` seats are free."""
    data = [_sku_json(s, low, plans=plans) for s in catalog.skus]
    # "low", not "warning": Graph's prepaidUnits.warning means seats in their grace period ("grace" here; they are
    # still assignable, so free counts them)
    columns = [
        "SKU",
        "skuId",
        "enabled",
        "consumed",
        "free",
        "grace",
        "suspended",
        "low",
        *(["plans"] if plans else []),
    ]
    rows = [_sku_row(s, low, plans=plans) for s in catalog.skus]
    emit(fmt, title=f"Subscribed SKUs (LOW: fewer than {low} free)", columns=columns, rows=rows, data=data)


def _sku_json(s: Sku, low: int, *, plans: bool) -> dict[str, Any]:
    seats = {
        "enabled": s.enabled,
        "consumed": s.consumed,
        "free": s.free,
        "warning": s.warning,
        "suspended": s.suspended,
    }
    data = {"skuId": s.id, "skuPartNumber": s.part_number, **seats, "low": s.low(low)}
    if plans:
        data["servicePlans"] = [{"id": p.id, "name": p.name, "appliesTo": p.applies_to} for p in s.plans]
    return data


def _sku_row(s: Sku, low: int, *, plans: bool) -> list[Cell]:
    names = [" ".join(p.name for p in s.plans)] if plans else []
    low_mark = "LOW" if s.low(low) else ""
    return [s.part_number, s.id, s.enabled, s.consumed, s.free, s.warning, s.suspended, low_mark, *names]


@dataclass(frozen=True, slots=True)
class UserResult:
    """What assign or remove did (or would do) for one user."""

    user: str
    sku: str
    action: str
    disabled: tuple[str, ...]
    detail: str
    requests: tuple[GraphRequest, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The --json shape of this result (the requests as Graph receives them)."""
        outcome = {"action": self.action, "disabledPlans": list(self.disabled), "detail": self.detail}
        return {"user": self.user, "sku": self.sku, **outcome, "requests": [q.as_dict() for q in self.requests]}

    def as_row(self) -> list[Cell]:
        """user, SKU, action, disabledPlans, detail, and the requests as compact JSON (the CSV columns)."""
        sent = json.dumps([q.as_dict() for q in self.requests], separators=(",", ":")) if self.requests else ""
        return [self.user, self.sku, self.action, " ".join(self.disabled), self.detail, sent]


def assigned(
    upn: str, want: DesiredLicense, plan: AssignmentPlan, requests: Sequence[GraphRequest], *, dry_run: bool
) -> UserResult:
    """One user's assign result."""
    if plan.held_by_group:
        action, detail = "group", f"holds {want.part_number} through a group; not changed here"
    elif plan.no_op:
        action, detail = "unchanged", "already has exactly these plans disabled; nothing sent"
    else:
        [change] = plan.changes
        action = "assigned" if change.before is None else "changed"
        action = f"would be {action}" if dry_run else action
        detail = f"usageLocation {plan.usage_location} set first" if plan.usage_location else ""
    return UserResult(upn, want.part_number, action, want.disabled_plan_names, detail, tuple(requests))


def removed(upn: str, removal: RemovalPlan, *, dry_run: bool) -> UserResult:
    """One user's remove result."""
    action = {"remove": "would be removed" if dry_run else "removed", "group-only": "group", "absent": "unchanged"}
    requests = (removal.request,) if removal.request else ()
    return UserResult(upn, removal.part_number, action[removal.action], (), removal.note, requests)


def user_results(
    command: str, results: Sequence[UserResult], fmt: Format, *, dry_run: bool, notes: Sequence[str] = ()
) -> None:
    """Per-user results; a dry run also shows every Graph request body verbatim."""
    data = {"dryRun": dry_run, "notes": list(notes), "results": [r.as_json() for r in results]}
    columns = ["user", "SKU", "action", "disabledPlans", "detail", "requests"]
    rows = [r.as_row() for r in results]
    if fmt != "table":
        emit(fmt, title="", columns=columns, rows=rows, data=data)
        return
    out = console()
    for r in results:
        for q in r.requests if dry_run else ():
            out.print(f"Would send {q.method} {esc(q.url)}  [dim]({esc(r.user)})[/]")
            out.print_json(json.dumps(q.body))
    title = f"{command}{' (dry run: nothing sent)' if dry_run else ''}"
    emit("table", title=title, columns=columns[:5], rows=[row[:5] for row in rows])
    counts = Counter(r.action for r in results)
    skus_ = sorted({r.sku for r in results if r.sku})
    out.print(f"{esc('/'.join(skus_) or command)}: " + ", ".join(f"{styled(k)} {v}" for k, v in sorted(counts.items())))
    for note in notes:
        out.print(f"[yellow]warning:[/] {esc(note)}")


@dataclass(frozen=True, slots=True)
class UserVerification:
    """One user's ServiceStatus check against the policy."""

    user: str
    rule: str
    verdicts: tuple[LicenseVerdict, ...]
    others: tuple[ObservedLicense, ...]
    error: str = ""
    grouped: frozenset[str] = frozenset()  # SKU ids among ``others`` held through a group (the group manages them)

    def holding(self, sku_id: str) -> str:
        """How an SKU outside the expected set is held: "group" (group-based licensing) or "unmanaged"."""
        return "group" if sku_id in self.grouped else "unmanaged"

    @property
    def as_expected(self) -> bool:
        """Every license the policy expects is verified."""
        return not self.error and all(v.outcome == "verified" for v in self.verdicts)


def _verification_json(r: UserVerification) -> dict[str, Any]:
    return {
        "user": r.user,
        "rule": r.rule,
        "asExpected": r.as_expected,
        "error": r.error or None,
        "licenses": [_verdict_json(v) for v in r.verdicts],
        "unmanaged": [_unmanaged_json(o, via_group=o.sku_id in r.grouped) for o in r.others],
    }


def _verdict_json(v: LicenseVerdict) -> dict[str, Any]:
    plans = [{"name": c.name, "status": c.status, "expected": c.expected} for c in v.checks]
    return {"sku": v.part_number, "outcome": v.outcome, "reason": v.reason, "planSource": v.source, "plans": plans}


def _unmanaged_json(o: ObservedLicense, *, via_group: bool) -> dict[str, Any]:
    return {"sku": o.part_number, "viaGroup": via_group, "plans": {p.name: p.status for p in o.plans}}


def verifications(results: Sequence[UserVerification], fmt: Format) -> None:
    """A ServiceStatus table per user and SKU (like (Get-MsolUser).Licenses.ServiceStatus)."""
    if fmt == "json":
        print_json([_verification_json(r) for r in results])
        return
    columns = ["user", "rule", "SKU", "outcome", "ServicePlan", "ProvisioningStatus", "Expected"]
    rows: list[list[Cell]] = []
    for r in results:
        rows += [[r.user, r.rule, "", "error", "", "", r.error]] if r.error else []
        for v in r.verdicts:
            rows += [[r.user, r.rule, v.part_number, v.outcome, c.name, c.status, c.expected] for c in v.checks]
        for o in r.others:
            rows += [[r.user, r.rule, o.part_number, r.holding(o.sku_id), p.name, p.status, ""] for p in o.plans]
    if fmt == "csv":
        emit("csv", title="", columns=columns, rows=rows)
        return
    out = console()
    for r in results:
        if r.error:
            out.print(f"[red]{esc(r.user)}: {esc(r.error)}[/]")
        for v in r.verdicts:
            title = f"{esc(r.user)}: {esc(v.part_number)} ({styled(v.outcome)}, rule {esc(r.rule)})"
            emit("table", title=title, columns=columns[4:], rows=[[c.name, c.status, c.expected] for c in v.checks])
            if v.outcome != "verified":
                out.print(f"  {esc(v.reason)}")
        for o in r.others:
            how = "held via a group; the group manages it" if o.sku_id in r.grouped else "not managed by the policy"
            title = f"{esc(r.user)}: {esc(o.part_number)} ({how})"
            emit("table", title=title, columns=columns[4:6], rows=[[p.name, p.status] for p in o.plans])
    if len(results) > 1:
        good = sum(r.as_expected for r in results)
        out.print(f"{good} of {len(results)} users as expected")


def statuses(rows: Sequence[StatusRecord], *, fmt: Format) -> None:
    """LicenseStatus rows, newest first."""
    data = [_status_json(r) for r in rows]
    columns = ["user", "SKU", "outcome", "updated (UTC)", "reason", "requestId", "source"]
    table: list[list[Cell]] = []
    for r in rows:
        updated, reason = f"{r.updated_at:%Y-%m-%d %H:%M:%S}", r.reason if fmt == "csv" else r.reason[:160]
        table.append([r.user_principal_name or r.user_key, r.sku, r.outcome, updated, reason, r.request_id, r.source])
    if fmt == "table":
        emit("table", title=f"LicenseStatus ({len(rows)} rows)", columns=columns[:5], rows=[t[:5] for t in table])
    else:
        emit(fmt, title="", columns=columns, rows=table, data=data)


def _status_json(r: StatusRecord) -> dict[str, Any]:
    who = {"user": r.user_key, "userPrincipalName": r.user_principal_name, "sku": r.sku}
    outcome = {"outcome": r.outcome, "reason": r.reason, "updatedAt": r.updated_at}
    return {**who, **outcome, "requestId": r.request_id, "source": r.source, "planStatuses": dict(r.plan_statuses)}


def requeued(users: Sequence[str], outcome: str, *, fmt: Format) -> None:
    """Which users went back to the queue."""
    data = {"requeued": list(users), "outcome": outcome}
    if fmt == "table":
        console().print(f"requeued {len(users)} {outcome} user(s) on license-requests")
    else:
        emit(fmt, title="", columns=["user", "outcome"], rows=[[u, outcome] for u in users], data=data)
