"""`licensing` / `python -m licensing`: the admin CLI (skus, assign, verify).

Exit codes: 0 done / as expected; 1 verify found something not as expected; 2 bad command line;
3 an expected failure (Graph refused, user unknown, bad policy or settings) printed as one line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from licensing import cli_render as render
from licensing.composition import Services
from licensing.errors import InvalidRequest, LicensingError, PolicyError
from licensing.graph import GraphGateway
from licensing.messages import LICENSE_REQUESTS_QUEUE
from licensing.planning import DesiredLicense, desired_licenses, plan_changes, resolve
from licensing.policy import LicenseSpec, load_policy
from licensing.records import OUTCOMES, StatusRecord
from licensing.settings import Settings
from licensing.storage import Storage
from licensing.sweep import run_sweep
from licensing.verification import ExpectedLicense, verify_license

EXIT_MISMATCH, EXIT_ERROR = 1, 3


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(prog="licensing", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    skus = sub.add_parser("skus", help="seats per SKU (like Get-MsolAccountSku)")
    skus.add_argument("--plans", action="store_true", help="also list each SKU's service plans")
    assign = sub.add_parser("assign", help="assign a SKU with exactly these plans disabled (-LicenseOptions)")
    assign.add_argument("user", help="object id or userPrincipalName")
    assign.add_argument("--sku", required=True, help="SKU part number, e.g. EMS")
    assign.add_argument("--disable", action="append", default=[], metavar="PLAN", help="plan name; repeat")
    assign.add_argument("--usage-location", help="ISO country code to set if the user has none")
    assign.add_argument("--dry-run", action="store_true", help="print the Graph requests instead of sending")
    verify = sub.add_parser("verify", help="every plan's provisioning status (like Licenses.ServiceStatus)")
    verify.add_argument("user", help="object id or userPrincipalName")
    sweep = sub.add_parser("sweep", help="find drift now, like the nightly timer (needs AzureWebJobsStorage)")
    sweep.add_argument("--dry-run", action="store_true", help="report only, whatever SWEEP_MODE says")
    sweep.add_argument("--full", action="store_true", help="read every user, not only changes since last time")
    sweep.add_argument("--csv", metavar="FILE", help="also write the drift report (CSV) to FILE")
    status = sub.add_parser("status", help="the LicenseStatus table (needs AzureWebJobsStorage)")
    status.add_argument("--outcome", choices=OUTCOMES, help="only rows with this outcome")
    status.add_argument("--since", metavar="AGE", help="only rows updated within AGE, e.g. 7d, 12h, 30m")
    status.add_argument("--user", help="only this user (object id, or the identifier a request gave)")
    requeue = sub.add_parser("requeue", help="send failed or blocked users back to license-requests")
    requeue.add_argument("--outcome", choices=("failed", "blocked"), default="failed")
    requeue.add_argument("--user", help="only this user")
    for p in (skus, assign, verify, sweep, status, requeue):
        p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; expected failures print one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return asyncio.run(_run(args, settings))
    except LicensingError as exc:
        print(f"licensing {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    graph = GraphGateway.from_settings(settings)
    try:
        command = {
            "skus": _skus, "assign": _assign, "verify": _verify, "sweep": _sweep, "status": _status,
            "requeue": _requeue,
        }[args.command]  # fmt: skip
        return await command(args, settings, graph)
    finally:
        await graph.close()


async def _skus(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    catalog = await graph.catalog()
    render.skus(catalog, plans=args.plans, as_json=args.json)
    return 0


async def _assign(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    user = await graph.get_user(args.user)
    catalog = await graph.catalog()
    desired = resolve(LicenseSpec(sku=args.sku, disabled_plans=tuple(args.disable)), catalog, rule="command line")
    plan = plan_changes(user, (desired,), catalog, rule="command line", usage_location=args.usage_location)
    requests: list[dict[str, Any]] = []
    if plan.usage_location:
        requests.append({"method": "PATCH", "url": f"/users/{user.id}", "body": {"usageLocation": plan.usage_location}})
    if plan.changes:
        body = {
            "addLicenses": [
                {"skuId": c.desired.sku_id, "disabledPlans": sorted(c.desired.disabled_plan_ids)} for c in plan.changes
            ],
            "removeLicenses": [],
        }
        requests.append({"method": "POST", "url": f"/users/{user.id}/assignLicense", "body": body})
    if not args.dry_run:
        if plan.usage_location:
            await graph.set_usage_location(user.id, plan.usage_location)
        if plan.changes:
            await graph.assign(user.id, [(c.desired.sku_id, c.desired.disabled_plan_ids) for c in plan.changes], [])
    render.assignment(user.user_principal_name, desired, plan, requests, dry_run=args.dry_run, as_json=args.json)
    return 0


async def _verify(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    user = await graph.get_user(args.user)
    catalog = await graph.catalog()
    policy = load_policy(settings.policy_path)
    rule = policy.rule_for(user.attributes)
    if rule is None:
        raise PolicyError(f"no policy rule matches {user.user_principal_name}; nothing to verify against")
    # What the policy expects, whether or not it could be assigned (no seats is "not as expected", exit 1).
    expected: dict[str, DesiredLicense] = {
        d.sku_id: d
        for d in desired_licenses(rule, policy, catalog)
        if not user.via_group(d.sku_id) or user.direct(d.sku_id)
    }
    observed = {o.sku_id: o for o in await graph.plan_states(user.id)}
    verdicts = [
        verify_license(ExpectedLicense(d.sku_id, d.part_number, d.disabled_plan_ids), observed.get(d.sku_id))
        for d in expected.values()
    ]
    others = [o for sku_id, o in observed.items() if sku_id not in expected]
    render.verification(user.user_principal_name, rule.name, verdicts, others, as_json=args.json)
    return 0 if all(v.outcome == "verified" for v in verdicts) else EXIT_MISMATCH


async def _sweep(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    storage = Storage.from_settings(settings.require_storage())
    services = Services(settings, graph, storage)
    try:
        await storage.ensure_created()
        with render.sweep_progress(enabled=not args.json) as progress:
            result = await run_sweep(
                services, mode="report" if args.dry_run else None, force_full=args.full, progress=progress
            )
    finally:
        await storage.close()
    if args.csv:
        await asyncio.to_thread(Path(args.csv).write_text, result.csv, encoding="utf-8")
    render.sweep_summary(result.summary(), as_json=args.json)
    return 0 if result.read != "skipped" else EXIT_ERROR


async def _rows(args: argparse.Namespace, storage: Storage) -> list[StatusRecord]:
    since = _age(args.since) if getattr(args, "since", None) else None
    cutoff = datetime.now(UTC) - since if since else None
    rows = [
        r
        async for r in storage.statuses(args.user, outcome=args.outcome)
        if not r.sku.startswith("~") and (cutoff is None or r.updated_at >= cutoff)
    ]
    return sorted(rows, key=lambda r: r.updated_at, reverse=True)


async def _status(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    storage = Storage.from_settings(settings.require_storage())
    try:
        rows = await _rows(args, storage)
    finally:
        await storage.close()
    render.statuses(rows, as_json=args.json)
    return 0


async def _requeue(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    storage = Storage.from_settings(settings.require_storage())
    try:
        rows = await _rows(args, storage)
        users = list(dict.fromkeys(r.user_key for r in rows))
        for user in users:
            request_id = f"requeue-{uuid.uuid4().hex[:12]}"
            await storage.send(LICENSE_REQUESTS_QUEUE, {"user": user, "source": "manual", "requestId": request_id})
    finally:
        await storage.close()
    render.requeued(users, args.outcome, as_json=args.json)
    return 0


def _age(text: str) -> timedelta:
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise InvalidRequest(f"--since {text!r}: use a number and d, h or m, e.g. 7d")
    return timedelta(**{units[text[-1]]: int(text[:-1])})
