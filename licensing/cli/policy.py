"""`licensing policy check [--against-tenant]`: validate the policy, resolve every name, what-if for users.

Exit codes: 0 clean; 1 the policy works but needs a decision (plans it never mentions, stale reviewedPlans);
3 the file is invalid or names something the tenant does not have (one line on stderr says what).
"""

from __future__ import annotations

import argparse
from contextlib import aclosing
from pathlib import Path
from typing import Any

from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.graph.reads import user_from_json
from licensing.adapters.policy_file import load_policy
from licensing.cli.output import Cell, console, emit, esc, print_json, problem
from licensing.core.errors import UserNotFound
from licensing.core.model import UserFacts
from licensing.core.policy import Policy
from licensing.core.policy_check import PolicyReport, WhatIf, check_against, what_if
from licensing.settings import Settings

EXIT_ATTENTION, EXIT_ERROR = 1, 3


def _rules(policy: Policy) -> list[list[Cell]]:
    """rule, match, sku, disabledPlans: one row per SKU a rule (or a companion) gives."""
    rows: list[list[Cell]] = []
    for rule in policy.rules:
        match = "all" if rule.match == "all" else " and ".join(f"{k}={v}" for k, v in rule.match.items())
        rows.extend([rule.name, match, spec.sku, list(spec.disabled_plans)] for spec in rule.licenses)
    for c in policy.companions:
        rows.extend([f"companion: {c.sku}", "with", s.sku, list(s.disabled_plans)] for s in c.requires)
    return rows


# --csv: one row per finding, each kind filling its columns (the JSON's field names)
CSV_COLUMNS = ("kind", "rule", "match", "sku", "disabledPlans", "unreviewedPlans", "user", "action", "reason")


def _csv_rows(data: dict[str, Any]) -> list[list[Cell]]:
    """The --json findings as --csv rows: rules, errors, warnings, unreviewed plans, what-ifs."""
    found: list[dict[str, Any]] = [{"kind": "rule", **r} for r in data["rules"]]
    found += [{"kind": kind, "reason": text} for kind in ("error", "warning") for text in data[f"{kind}s"]]
    found += [
        {"kind": "unreviewed", "rule": u["rules"], "sku": u["sku"], "unreviewedPlans": u["plans"]}
        for u in data["unreviewedPlans"]
    ]
    found += [{"kind": "what-if", **w} for w in data["whatIf"]]
    return [[f.get(c) for c in CSV_COLUMNS] for f in found]


async def _sample(args: argparse.Namespace, graph: GraphGateway) -> list[UserFacts | WhatIf]:
    """The --user users (an unknown one becomes a what-if row saying so), else the first --sample users."""
    if args.user:
        found: list[UserFacts | WhatIf] = []
        for name in args.user:
            try:
                found.append(await graph.get_user(name))
            except UserNotFound as exc:
                found.append(WhatIf(name, "-", "not found", exc.message))
        return found
    # aclosing: stop paging (and cancel the prefetched next page) before the Graph client closes
    async with aclosing(BulkReader(graph).users(page_size=max(args.sample, 1))) as pages:
        async for page in pages:
            return [user_from_json(u) for u in page[: args.sample]]
    return []


async def check(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Validate (always); with --against-tenant also resolve names, list unreviewed plans and run what-ifs."""
    path = Path(args.policy) if args.policy else settings.policy_path
    policy = load_policy(path)
    report, whatifs = PolicyReport((), (), ()), list[WhatIf]()
    if args.against_tenant:
        catalog = await graph.catalog()
        report = check_against(policy, catalog)
        if not report.errors and (args.sample > 0 or args.user):
            sample = await _sample(args, graph)
            whatifs = [u if isinstance(u, WhatIf) else what_if(u, policy, catalog) for u in sample]
    _render(path, policy, report, whatifs, args.format, against_tenant=args.against_tenant)
    if report.errors:
        message = f"{path.name}: {len(report.errors)} name(s) do not resolve in this tenant; first: {report.errors[0]}"
        problem("policy check", message)
        return EXIT_ERROR
    return EXIT_ATTENTION if report.unreviewed or report.warnings else 0


def _render(
    path: Path, policy: Policy, report: PolicyReport, whatifs: list[WhatIf], fmt: str, *, against_tenant: bool
) -> None:
    rules = _rules(policy)
    data: dict[str, Any] = {
        "policy": str(path),
        "valid": True,
        "checkedAgainstTenant": against_tenant,
        "rules": [dict(zip(("rule", "match", "sku", "disabledPlans"), r, strict=True)) for r in rules],
        "errors": list(report.errors),
        "warnings": list(report.warnings),
        "unreviewedPlans": [{"sku": u.sku, "plans": list(u.plans), "rules": list(u.rules)} for u in report.unreviewed],
        "whatIf": [{"user": w.user, "rule": w.rule, "action": w.action, "reason": w.detail} for w in whatifs],
    }
    if fmt == "json":
        print_json(data)
        return
    if fmt == "csv":
        emit("csv", title="", columns=CSV_COLUMNS, rows=_csv_rows(data))
        return
    out = console()
    emit(
        "table", title=f"Policy {esc(path.name)}: valid", columns=["rule", "match", "sku", "disabledPlans"], rows=rules
    )
    for e in report.errors:
        out.print(f"[red]error:[/] {esc(e)}")
    for w in report.warnings:
        out.print(f"[yellow]warning:[/] {esc(w)}")
    for u in report.unreviewed:
        names = ", ".join(u.rules) or "(companion only)"
        text = (
            f"has plans the policy never mentions, enabled for rule(s) {names}: {', '.join(u.plans)}. "
            f"Disable them in the rules or list them under reviewedPlans.{u.sku} once reviewed."
        )
        out.print(f"[yellow]{esc(u.sku)}[/] {esc(text)}")
    if whatifs:
        emit(
            "table",
            title="What-if (nothing sent)",
            columns=["user", "rule", "action", "reason"],
            rows=[[w.user, w.rule, w.action, w.detail] for w in whatifs],
        )
    if not against_tenant:
        out.print("names not checked against the tenant; add --against-tenant to resolve them and run what-ifs")
    elif not report.errors and not report.unreviewed and not report.warnings:
        out.print("[green]every SKU and plan name resolves; every plan of every SKU is reviewed[/]")
