"""Rendering for the CLI: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from licensing.model import Catalog, ObservedLicense
from licensing.planning import AssignmentPlan, DesiredLicense
from licensing.records import StatusRecord
from licensing.verification import LicenseVerdict

LOW_SEATS = 5
_STYLE = {"Success": "green", "Disabled": "dim", "Error": "red", "verified": "green", "failed": "red"}


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _json(data: object) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))  # noqa: T201  # the CLI's output


def _styled(text: str) -> str:
    style = _STYLE.get(text, "yellow" if text.startswith("Pending") or text == "pending" else "")
    return f"[{style}]{text}[/]" if style else text


def skus(catalog: Catalog, *, plans: bool, as_json: bool) -> None:
    """Seats per SKU; plans optional."""
    if as_json:
        _json([
            {"skuId": s.id, "skuPartNumber": s.part_number, "enabled": s.enabled, "consumed": s.consumed,
             "free": s.free, "suspended": s.suspended,
             **({"servicePlans": [{"id": p.id, "name": p.name, "appliesTo": p.applies_to} for p in s.plans]}
                if plans else {})}
            for s in catalog.skus
        ])  # fmt: skip
        return
    table = Table(title="Subscribed SKUs")
    for column in ("SKU", "skuId", "enabled", "consumed", "free", "suspended", *(["plans"] if plans else [])):
        table.add_column(column, justify="right" if column in {"enabled", "consumed", "free", "suspended"} else "left")
    for s in catalog.skus:
        free = f"[red]{s.free}[/]" if s.free < LOW_SEATS else str(s.free)
        row = [s.part_number, s.id, str(s.enabled), str(s.consumed), free, str(s.suspended)]
        table.add_row(*row, *([", ".join(p.name for p in s.plans)] if plans else []))
    _console().print(table)


def assignment(
    upn: str, desired: DesiredLicense, plan: AssignmentPlan, requests: list[dict[str, Any]], *, dry_run: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """What assign did (or would do)."""
    if as_json:
        _json({"user": upn, "sku": desired.part_number, "disabledPlans": list(desired.disabled_plan_names),
               "changed": not plan.no_op, "dryRun": dry_run, "requests": requests})  # fmt: skip
        return
    console = _console()
    if plan.no_op:
        console.print(f"{upn} already has {desired.part_number} with exactly these plans disabled; nothing sent.")
        return
    if plan.held_by_group:
        console.print(f"{upn} holds {desired.part_number} through a group; not changed here.")
        return
    verb = "Would send" if dry_run else "Sent"
    for request in requests:
        console.print(f"{verb} {request['method']} {request['url']}")
        console.print_json(json.dumps(request["body"]))
    disabled = ", ".join(desired.disabled_plan_names) or "none"
    if not dry_run:
        console.print(f"[green]{desired.part_number} assigned to {upn}[/] (disabled: {disabled})")


def verification(
    upn: str, rule: str, verdicts: Sequence[LicenseVerdict], others: Sequence[ObservedLicense], *, as_json: bool
) -> None:
    """A ServiceStatus table per SKU."""
    if as_json:
        _json({
            "user": upn, "rule": rule,
            "licenses": [{"sku": v.part_number, "outcome": v.outcome, "reason": v.reason,
                          "plans": [{"name": c.name, "status": c.status, "expected": c.expected} for c in v.checks]}
                         for v in verdicts],
            "unmanaged": [{"sku": o.part_number, "plans": {p.name: p.status for p in o.plans}} for o in others],
        })  # fmt: skip
        return
    console = _console()
    for v in verdicts:
        table = Table(title=f"{upn}: {v.part_number} ({_styled(v.outcome)}, rule {rule})")
        for column in ("ServicePlan", "ProvisioningStatus", "Expected"):
            table.add_column(column)
        for c in v.checks:
            table.add_row(c.name, _styled(c.status), c.expected)
        console.print(table)
        if v.outcome != "verified":
            console.print(f"  {v.reason}")
    for o in others:
        table = Table(title=f"{upn}: {o.part_number} (not managed by the policy)")
        for column in ("ServicePlan", "ProvisioningStatus"):
            table.add_column(column)
        for p in o.plans:
            table.add_row(p.name, _styled(p.status))
        console.print(table)


@contextmanager
def sweep_progress(*, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A live line: users scanned and users with drift (the total is unknown while paging)."""
    if not enabled:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("sweeping")

        def update(seen: int, drifted: int) -> None:
            bar.update(task, description=f"users scanned {seen:,}  drift found {drifted:,}")

        yield update


def sweep_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    """The run's figures and drift by kind."""
    if as_json:
        _json(summary)
        return
    console = _console()
    if summary["read"] == "skipped":
        console.print("[yellow]another sweep is running; this one did nothing[/]")
        return
    table = Table(title=f"Sweep {summary['runId']} ({summary['read']} read, {summary['mode']} mode)")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("users scanned", f"{summary['usersSeen']:,}")
    table.add_row("users with drift", f"{summary['usersDrifted']:,}")
    for kind, count in summary["drift"].items():
        table.add_row(f"  {kind}", f"{count:,}")
    table.add_row("fixes queued", f"{summary['fixesEnqueued']:,}")
    table.add_row("Graph requests", f"{summary['graphRequests']:,}")
    console.print(table)
    if summary["report"]:
        console.print(f"report: blob {summary['report']}")


def statuses(rows: Sequence[StatusRecord], *, as_json: bool) -> None:
    """LicenseStatus rows, newest first."""
    if as_json:
        _json([{"user": r.user_key, "userPrincipalName": r.user_principal_name, "sku": r.sku, "outcome": r.outcome,
                "reason": r.reason, "updatedAt": r.updated_at, "requestId": r.request_id, "source": r.source,
                "planStatuses": dict(r.plan_statuses)} for r in rows])  # fmt: skip
        return
    table = Table(title=f"LicenseStatus ({len(rows)} rows)")
    for column in ("user", "SKU", "outcome", "updated (UTC)", "reason"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.user_principal_name or r.user_key, r.sku, _styled(r.outcome), f"{r.updated_at:%Y-%m-%d %H:%M}",
                      r.reason[:160])  # fmt: skip
    _console().print(table)


def requeued(users: Sequence[str], outcome: str, *, as_json: bool) -> None:
    """How many users went back to the queue."""
    if as_json:
        _json({"requeued": list(users), "outcome": outcome})
        return
    _console().print(f"requeued {len(users)} {outcome} user(s) on license-requests")
