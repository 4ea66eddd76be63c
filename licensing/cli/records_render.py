"""What `status`, `requeue` and `events` print, in the CLI's one vocabulary (see output.py and docs/admin-guide.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from licensing.cli.output import Cell, Format, console, emit, esc, print_table
from licensing.core.records import AuditEvent, StatusRecord

STATUS_COLUMNS = (
    "user",
    "userId",
    "sku",
    "outcome",
    "updatedAt",
    "reason",
    "requestId",
    "source",
    "rule",
    "disabledPlans",
    "planStatuses",
    "planSource",
)
EVENT_COLUMNS = (
    "at",
    "kind",
    "sku",
    "disabledBefore",
    "disabledAfter",
    "rule",
    "reason",
    "source",
    "requestId",
    "user",
    "userId",
)


def statuses(rows: Sequence[StatusRecord], *, fmt: Format, ids: bool = False, note: str = "") -> None:
    """LicenseStatus rows, newest first; the table shows whole reasons, wrapped between words."""
    table = [_status_row(r) for r in rows]
    shown = ["user", "sku", "outcome", "updatedAt", "reason", *(["userId", "requestId"] if ids else [])]
    title = f"LicenseStatus ({len(rows)} rows{esc(note)})"
    emit(fmt, title=title, columns=STATUS_COLUMNS, rows=table, shown=shown)


def _status_row(r: StatusRecord) -> list[Cell]:
    return [
        r.user_principal_name or r.user_key,
        r.user_key,
        r.sku,
        r.outcome,
        r.updated_at,
        r.reason,
        r.request_id,
        r.source,
        r.rule or None,
        list(r.disabled_plans),
        dict(r.plan_statuses),
        r.plan_source or None,
    ]


def recounted(totals: dict[str, int], *, fmt: Format) -> None:
    """The outcome totals a recount left on the status page (JSON: ``outcomes`` as the page's JSON has it)."""
    rows: list[list[Cell]] = [[outcome, count] for outcome, count in totals.items()]
    emit(fmt, title="status totals recounted", columns=["outcome", "count"], rows=rows, data={"outcomes": totals})


def requeued(rows: Sequence[StatusRecord], outcome: str, *, fmt: Format) -> None:
    """Which users went back to the queue."""
    users: list[dict[str, Any]] = [{"user": r.user_principal_name or r.user_key, "userId": r.user_key} for r in rows]
    if fmt == "table":
        console().print(f"requeued {len(users)} {outcome} user(s) on license-requests")
        return
    data = {"outcome": outcome, "requeued": users}
    table: list[list[Cell]] = [[u["user"], u["userId"], outcome] for u in users]
    emit(fmt, title="", columns=["user", "userId", "outcome"], rows=table, data=data)


def events(found: Sequence[AuditEvent], *, user: str, fmt: Format, ids: bool = False, note: str = "") -> None:
    """A user's audit trail, newest first: ``user`` is how to show them (their UPN when Graph knows them)."""
    table: list[list[Cell]] = [
        [
            e.at,
            e.kind,
            e.sku or None,
            None if e.before is None else list(e.before),
            None if e.after is None else list(e.after),
            e.rule or None,
            e.detail,
            e.source,
            e.request_id,
            user,
            e.user_key,
        ]
        for e in found
    ]
    if fmt != "table":
        emit(fmt, title="", columns=EVENT_COLUMNS, rows=table)
        return
    # For people, three columns that fit 80: when and what, the SKU and its disabled plans ("before -> after"),
    # the rule and reason; ids only with --ids
    columns = ["at (UTC), kind", "SKU, disabled plans", "rule, reason", *(["requestId", "userId"] if ids else [])]
    rows: list[list[Cell]] = [
        [
            f"{e.at:%Y-%m-%d %H:%M:%S}\n{e.kind}",
            "\n".join(text for text in (e.sku, _change(e)) if text),
            "; ".join(text for text in (e.rule and f"rule {e.rule}", e.detail) if text),
            *([e.request_id, e.user_key] if ids else []),
        ]
        for e in found
    ]
    title = f"LicenseEvents of {esc(user)} ({len(found)} events{esc(note)}, newest first)"
    print_table(title, columns, rows)


def _change(e: AuditEvent) -> str | None:
    if e.before is None and e.after is None:
        return None
    before, after = (None if p is None else ", ".join(p) or "none" for p in (e.before, e.after))
    return after if before is None else f"{before} -> {after or '-'}"
