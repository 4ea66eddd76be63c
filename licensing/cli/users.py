"""The CLI's per-user commands — assign, remove, verify — for one user, many, or `--from-file users.csv`.

Each user is handled on its own: one user's failure (unknown, no seats, Graph refusing) is reported on stderr
and in the results, and the others go on. Up to ``--parallel`` users are in flight at once; the SDK's retry
handler rides out Graph's 429s.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.policy_file import load_policy
from licensing.cli import render
from licensing.cli.output import problem, progress_bar
from licensing.cli.users_file import CommandLineError, UserRow, combine, parse_users_file
from licensing.core.admin_plans import (
    against_assignment,
    assignment_requests,
    keep_disabled,
    plan_removal,
    seats_needed,
)
from licensing.core.errors import LicensingError, PolicyError, UsageLocationMissing
from licensing.core.planning import AssignmentPlan, DesiredLicense, desired_licenses, plan_changes, resolve
from licensing.core.policy import LicenseSpec
from licensing.core.verification import ExpectedLicense, group_failure_verdict, verify_license
from licensing.settings import Settings

EXIT_MISMATCH, EXIT_ERROR = 1, 3
# An admin at a prompt can wait: assignLicense right after PATCH usageLocation may still answer "invalid usage
# location" while the directory replicates (https://learn.microsoft.com/graph/api/user-assignlicense). About 15 s.
LOCATION_LAG_WAITS = (1, 2, 4, 8)
T = TypeVar("T")


def users_of(args: argparse.Namespace) -> list[UserRow]:
    """USER … on the command line plus --from-file, each once (InvalidRequest names a bad file line)."""
    rows: list[UserRow] = []
    if args.from_file:
        path = Path(args.from_file)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CommandLineError(f"cannot read {path}: {exc.strerror}") from None
        # Excel's "CSV UTF-8" starts with a byte-order mark; PowerShell 5's Out-File writes UTF-16 with one.
        encoding = "utf-16" if raw[:2] in {b"\xff\xfe", b"\xfe\xff"} else "utf-8-sig"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise CommandLineError(
                f"{path} is neither UTF-8 nor UTF-16 text; save it as CSV UTF-8 (Export-Csv -Encoding utf8)"
            ) from None
        rows = parse_users_file(text, source=path.name)
    return combine(args.users, rows)


async def for_each(
    rows: Sequence[UserRow], work: Callable[[UserRow], Awaitable[T]], *, parallel: int, label: str
) -> list[T]:
    """``work`` for every row, at most ``parallel`` at once, results in the rows' order, with a progress bar."""
    gate = asyncio.Semaphore(max(parallel, 1))
    results: dict[int, T] = {}
    with progress_bar(label, len(rows), enabled=len(rows) > 1) as advance:

        async def run(index: int, row: UserRow) -> None:
            async with gate:
                results[index] = await work(row)
            advance()

        await asyncio.gather(*(run(i, row) for i, row in enumerate(rows)))
    return [results[i] for i in range(len(rows))]


def _expected(desired: DesiredLicense) -> ExpectedLicense:
    return ExpectedLicense(desired.sku_id, desired.part_number, desired.disabled_plan_ids)


async def _assign(
    graph: GraphGateway, user_id: str, adds: list[tuple[str, frozenset[str]]], *, location_just_set: bool
) -> None:
    """assignLicense; right after setting the usage location, wait out Graph's replication lag (a few seconds)."""
    for wait in (*LOCATION_LAG_WAITS, None) if location_just_set else (None,):
        try:
            await graph.assign(user_id, adds, [])
        except UsageLocationMissing:
            if wait is None:
                raise
            await asyncio.sleep(wait)
        else:
            return


def _failed(command: str, row: UserRow, exc: LicensingError) -> render.UserResult:
    problem(command, f"{row.user}: {exc.message}")
    return render.UserResult(row.user, "", "failed", (), exc.message)


async def assign(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Assign one SKU with exactly (or, with --keep-disabled, at least) these plans disabled."""
    rows = users_of(args)
    catalog = await graph.catalog()
    desired = resolve(LicenseSpec(sku=args.sku, disabled_plans=tuple(args.disable)), catalog, rule="command line")
    plans: dict[str, AssignmentPlan] = {}

    async def one(row: UserRow) -> render.UserResult:
        try:
            user = await graph.get_user(row.user)
            want = keep_disabled(desired, user, catalog) if args.keep_disabled else desired
            location = row.usage_location or args.usage_location
            try:
                # An admin naming the SKU wants it held: a group in error gives it to nobody, so assign it directly.
                plan = plan_changes(
                    user, (want,), catalog, rule="command line", usage_location=location, direct_when_group_fails=True
                )
            except UsageLocationMissing:
                raise UsageLocationMissing(
                    f"{user.user_principal_name} has no usage location; pass --usage-location (e.g. US) or give "
                    "the users file a usageLocation column"
                ) from None
            plans[user.id] = plan
            requests = assignment_requests(user, plan)
            if not args.dry_run:
                if plan.usage_location:
                    await graph.set_usage_location(user.id, plan.usage_location)
                if plan.changes:
                    adds = [(c.desired.sku_id, c.desired.disabled_plan_ids) for c in plan.changes]
                    await _assign(graph, user.id, adds, location_just_set=bool(plan.usage_location))
        except LicensingError as exc:
            return _failed("assign", row, exc)
        return render.assigned(user.user_principal_name, want, plan, requests, dry_run=args.dry_run)

    results = await for_each(rows, one, parallel=args.parallel, label=f"assign {desired.part_number}")
    notes = seats_needed(plans, catalog) if args.dry_run else []
    render.user_results("assign", results, args.format, dry_run=args.dry_run, notes=notes)
    return EXIT_ERROR if any(r.action == "failed" for r in results) else 0


async def remove(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Remove the direct assignment of a SKU; group-assigned copies are never touched (and we say so)."""
    rows = users_of(args)
    catalog = await graph.catalog()
    sku = catalog.by_part_number(args.sku)
    if sku is None:
        have = ", ".join(sorted(s.part_number for s in catalog.skus)) or "no SKUs"
        raise PolicyError(f"SKU {args.sku!r} is not one this tenant subscribes to; the tenant has: {have}")

    async def one(row: UserRow) -> render.UserResult:
        try:
            user = await graph.get_user(row.user)
            removal = plan_removal(user, sku)
            if removal.request is not None and not args.dry_run:
                await graph.assign(user.id, [], [removal.sku_id])
        except LicensingError as exc:
            return _failed("remove", row, exc)
        return render.removed(user.user_principal_name, removal, dry_run=args.dry_run)

    results = await for_each(rows, one, parallel=args.parallel, label=f"remove {sku.part_number}")
    render.user_results("remove", results, args.format, dry_run=args.dry_run)
    return EXIT_ERROR if any(r.action == "failed" for r in results) else 0


async def verify(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Every plan's provisioning status against the policy: exit 1 when anything is not as expected."""
    rows = users_of(args)
    catalog = await graph.catalog()
    policy = load_policy(settings.policy_path)

    async def one(row: UserRow) -> render.UserVerification:
        try:
            user = await graph.get_user(row.user)
            rule = policy.rule_for(user.attributes)
            if rule is None:
                raise PolicyError(f"no policy rule matches {user.user_principal_name}; nothing to verify against")
            # What the policy expects, whether or not it could be assigned (no seats is "not as expected").
            expected: dict[str, DesiredLicense] = {
                d.sku_id: d
                for d in desired_licenses(rule, policy, catalog)
                if not user.via_group(d.sku_id) or user.direct(d.sku_id)
            }
            observed = {o.sku_id: o for o in await graph.plan_states(user.id)}
        except LicensingError as exc:
            problem("verify", f"{row.user}: {exc.message}")
            return render.UserVerification(row.user, "", (), (), error=exc.message)
        verdicts = tuple(
            group_failure_verdict(_expected(d), failure)
            if not user.direct(d.sku_id) and (failure := user.group_failure(d.sku_id))
            else against_assignment(
                verify_license(_expected(d), observed.get(d.sku_id), user=user.user_principal_name), d, user, catalog
            )
            for d in expected.values()
        )
        others = tuple(o for sku_id, o in observed.items() if sku_id not in expected)
        grouped = frozenset(o.sku_id for o in others if user.via_group(o.sku_id))
        return render.UserVerification(user.user_principal_name, rule.name, verdicts, others, grouped=grouped)

    results = await for_each(rows, one, parallel=args.parallel, label="verify")
    render.verifications(results, args.format)
    if any(r.error for r in results):
        return EXIT_ERROR
    return 0 if all(r.as_expected for r in results) else EXIT_MISMATCH
