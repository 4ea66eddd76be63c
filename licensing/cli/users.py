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
from licensing.cli import render
from licensing.cli.output import problem, progress_bar
from licensing.cli.users_file import CommandLineError, UserRow, combine, parse_users_file
from licensing.core.admin_plans import (
    assignment_requests,
    keep_disabled,
    plan_removal,
    seats_needed,
)
from licensing.core.errors import LicensingError, PolicyError, SeatsExhausted, UsageLocationMissing
from licensing.core.model import Catalog, Sku, UserFacts
from licensing.core.planning import AssignmentPlan, DesiredLicense, plan_changes, resolve
from licensing.core.policy import LicenseSpec
from licensing.settings import Settings

EXIT_ERROR = 3
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


def _failed(command: str, row: UserRow, sku: str, exc: LicensingError) -> render.UserResult:
    problem(command, f"{row.user}: {exc.message}")
    return render.UserResult(row.user, "", sku, "failed", (), exc.message)


def tenant_sku(catalog: Catalog, part_number: str) -> Sku:
    """``--sku``'s SKU; PolicyError (in the command line's words) lists what the tenant has."""
    sku = catalog.by_part_number(part_number)
    if sku is None:
        have = ", ".join(sorted(s.part_number for s in catalog.skus)) or "no SKUs"
        raise PolicyError(f"--sku {part_number!r}: this tenant does not subscribe to it; the tenant has: {have}")
    return sku


def _wanted(catalog: Catalog, part_number: str, disable: list[str]) -> DesiredLicense:
    """--sku with --disable resolved to ids; a name the tenant lacks is named in the command line's words (the
    policy's resolver would blame a policy rule)."""
    sku = tenant_sku(catalog, part_number)
    for name in disable:
        if sku.plan_named(name) is None:
            have = ", ".join(sorted(p.name for p in sku.plans))
            raise PolicyError(f"--disable {name!r}: {sku.part_number} has no such plan; {sku.part_number} has: {have}")
    return resolve(LicenseSpec(sku=sku.part_number, disabled_plans=tuple(disable)), catalog, rule="--sku")


def _plan(user: UserFacts, want: DesiredLicense, catalog: Catalog, location: str | None) -> AssignmentPlan:
    """The assignment for one user; a missing usage location or seat is explained in the command line's words."""
    upn = user.user_principal_name
    try:
        # An admin naming the SKU wants it held: a group in error gives it to nobody, so assign it directly.
        return plan_changes(user, (want,), catalog, rule="--sku", usage_location=location, direct_when_group_fails=True)
    except UsageLocationMissing:
        raise UsageLocationMissing(
            f"{upn} has no usage location; pass --usage-location (e.g. US) or give the users file a usageLocation "
            "column"
        ) from None
    except SeatsExhausted as exc:
        short = ", ".join(exc.part_numbers)
        message = f"no free seats for {short}; nothing assigned to {upn} (`licensing skus` shows the seats)"
        raise SeatsExhausted(message, part_numbers=exc.part_numbers) from None


async def assign(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Assign one SKU with exactly (or, with --keep-disabled, at least) these plans disabled."""
    rows = users_of(args)
    catalog = await graph.catalog()
    desired = _wanted(catalog, args.sku, args.disable)
    plans: dict[str, AssignmentPlan] = {}

    async def one(row: UserRow) -> render.UserResult:
        try:
            user = await graph.get_user(row.user)
            want = keep_disabled(desired, user, catalog) if args.keep_disabled else desired
            plan = _plan(user, want, catalog, row.usage_location or args.usage_location)
            plans[user.id] = plan
            requests = assignment_requests(user, plan)
            if not args.dry_run:
                if plan.usage_location:
                    await graph.set_usage_location(user.id, plan.usage_location)
                if plan.changes:
                    adds = [(c.desired.sku_id, c.desired.disabled_plan_ids) for c in plan.changes]
                    await _assign(graph, user.id, adds, location_just_set=bool(plan.usage_location))
        except LicensingError as exc:
            return _failed("assign", row, desired.part_number, exc)
        return render.assigned(user.user_principal_name, user.id, want, plan, requests, dry_run=args.dry_run)

    results = await for_each(rows, one, parallel=args.parallel, label=f"assign {desired.part_number}")
    notes = seats_needed(plans, catalog) if args.dry_run else []
    render.user_results("assign", results, args.format, dry_run=args.dry_run, notes=notes, ids=args.ids)
    return EXIT_ERROR if any(r.outcome == "failed" for r in results) else 0


async def remove(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Remove the direct assignment of a SKU; group-assigned copies are never touched (and we say so)."""
    rows = users_of(args)
    catalog = await graph.catalog()
    sku = tenant_sku(catalog, args.sku)

    async def one(row: UserRow) -> render.UserResult:
        try:
            user = await graph.get_user(row.user)
            removal = plan_removal(user, sku)
            if removal.request is not None and not args.dry_run:
                await graph.assign(user.id, [], [removal.sku_id])
        except LicensingError as exc:
            return _failed("remove", row, sku.part_number, exc)
        return render.removed(user.user_principal_name, user.id, removal, dry_run=args.dry_run)

    results = await for_each(rows, one, parallel=args.parallel, label=f"remove {sku.part_number}")
    render.user_results("remove", results, args.format, dry_run=args.dry_run, ids=args.ids)
    return EXIT_ERROR if any(r.outcome == "failed" for r in results) else 0
