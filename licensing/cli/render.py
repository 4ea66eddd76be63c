"""What `skus`, `assign` and `remove` print: rich tables for people, JSON (--json) and CSV (--csv) for scripts.

Field names follow the CLI's one vocabulary (see output.py and docs/admin-guide.md): ``user``/``userId``,
``sku``/``skuId``, ``outcome``, ``reason``, ``disabledPlans`` as a list.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from licensing.cli.output import Cell, Format, console, emit, esc, styled
from licensing.core.admin_plans import GraphRequest, RemovalPlan
from licensing.core.model import Catalog, Sku
from licensing.core.planning import AssignmentPlan, DesiredLicense

SEATS = ("enabled", "consumed", "free", "warning", "suspended", "low")


def skus(catalog: Catalog, *, plans: bool, fmt: Format, low: int, ids: bool = False) -> None:
    """Seats per SKU (Get-MsolAccountSku), flagged ``low`` when fewer than ``low`` seats are free."""
    # "low", not "warning": Graph's prepaidUnits.warning means seats in their grace period (still assignable, so
    # free counts them); the table heads that column "grace"
    columns = ["sku", "skuId", *SEATS, *(["servicePlans"] if plans else [])]
    rows = [_sku_row(s, low, plans=plans) for s in catalog.skus]
    data = [_sku_json(s, low, plans=plans) for s in catalog.skus]
    shown = [c for c in columns if ids or c != "skuId"]
    title = f"Subscribed SKUs (low: fewer than {low} free)"
    emit(fmt, title=title, columns=columns, rows=rows, data=data, shown=shown)


def _sku_json(s: Sku, low: int, *, plans: bool) -> dict[str, Any]:
    seats = {"enabled": s.enabled, "consumed": s.consumed, "free": s.free, "warning": s.warning}
    data = {"sku": s.part_number, "skuId": s.id, **seats, "suspended": s.suspended, "low": s.low(low)}
    if plans:
        data["servicePlans"] = [{"plan": p.name, "planId": p.id, "appliesTo": p.applies_to} for p in s.plans]
    return data


def _sku_row(s: Sku, low: int, *, plans: bool) -> list[Cell]:
    names = [[p.name for p in s.plans]] if plans else []
    return [s.part_number, s.id, s.enabled, s.consumed, s.free, s.warning, s.suspended, s.low(low), *names]


@dataclass(frozen=True, slots=True)
class UserResult:
    """What assign or remove did (or would do) for one user."""

    user: str
    user_id: str
    sku: str
    outcome: str
    disabled: tuple[str, ...]
    reason: str
    requests: tuple[GraphRequest, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The --json shape of this result (the requests as Graph receives them)."""
        who = {"user": self.user, "userId": self.user_id or None, "sku": self.sku or None}
        outcome = {"outcome": self.outcome, "disabledPlans": list(self.disabled), "reason": self.reason}
        return {**who, **outcome, "requests": [q.as_dict() for q in self.requests]}

    def as_row(self) -> list[Cell]:
        """The CSV columns (RESULT_COLUMNS); the requests as compact JSON."""
        sent = json.dumps([q.as_dict() for q in self.requests], separators=(",", ":")) if self.requests else ""
        return [self.user, self.user_id, self.sku, self.outcome, self.disabled, self.reason, sent]


RESULT_COLUMNS = ("user", "userId", "sku", "outcome", "disabledPlans", "reason", "requests")


def assigned(
    upn: str,
    user_id: str,
    want: DesiredLicense,
    plan: AssignmentPlan,
    requests: Sequence[GraphRequest],
    *,
    dry_run: bool,
) -> UserResult:
    """One user's assign result."""
    if plan.held_by_group:
        outcome, reason = "group", f"holds {want.part_number} through a group; not changed here"
    elif plan.no_op:
        outcome, reason = "unchanged", "already has exactly these plans disabled; nothing sent"
    else:
        [change] = plan.changes
        outcome = "assigned" if change.before is None else "changed"
        outcome = f"would be {outcome}" if dry_run else outcome
        where = f"usageLocation {plan.usage_location}"
        reason = (f"{where} would be set first" if dry_run else f"{where} set first") if plan.usage_location else ""
    return UserResult(upn, user_id, want.part_number, outcome, want.disabled_plan_names, reason, tuple(requests))


def removed(upn: str, user_id: str, removal: RemovalPlan, *, dry_run: bool) -> UserResult:
    """One user's remove result; a dry run says "would be removed" in every column."""
    outcome = {"remove": "would be removed" if dry_run else "removed", "group-only": "group", "absent": "unchanged"}
    reason = removal.note
    if removal.action == "remove":
        kept = f"; the copy from group(s) {', '.join(removal.groups)} stays (never touched)" if removal.groups else ""
        reason = f"direct {removal.part_number} assignment {outcome['remove']}{kept}"
    requests = (removal.request,) if removal.request else ()
    return UserResult(upn, user_id, removal.part_number, outcome[removal.action], (), reason, requests)


def user_results(
    command: str,
    results: Sequence[UserResult],
    fmt: Format,
    *,
    dry_run: bool,
    notes: Sequence[str] = (),
    ids: bool = False,
) -> None:
    """Per-user results; a dry run also shows every Graph request body verbatim."""
    data = {"dryRun": dry_run, "notes": list(notes), "results": [r.as_json() for r in results]}
    rows = [r.as_row() for r in results]
    if fmt != "table":
        emit(fmt, title="", columns=RESULT_COLUMNS, rows=rows, data=data)
        return
    out = console()
    for r in results:
        for q in r.requests if dry_run else ():
            out.print(f"Would send {q.method} {esc(q.url)}  [dim]({esc(r.user)})[/]")
            out.print_json(json.dumps(q.body))
    title = f"{command}{' (dry run: nothing sent)' if dry_run else ''}"
    shown = [c for c in RESULT_COLUMNS[:-1] if ids or c != "userId"]
    emit("table", title=title, columns=RESULT_COLUMNS, rows=rows, shown=shown)
    counts = Counter(r.outcome for r in results)
    skus_ = sorted({r.sku for r in results if r.sku})
    out.print(f"{esc('/'.join(skus_) or command)}: " + ", ".join(f"{styled(k)} {v}" for k, v in sorted(counts.items())))
    for note in notes:
        out.print(f"[yellow]warning:[/] {esc(note)}")
