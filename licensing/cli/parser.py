"""The `licensing` command-line grammar: global options (before or after the command), and one sub-parser per
command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from licensing.core.forecast import DEFAULT_DAYS, MAX_DAYS
from licensing.core.records import OUTCOMES

SINCE = "only what happened within AGE (7d, 12h, 30m) or since a date (2025-03-01, 2025-03-01T09:00, UTC)"


def _country(text: str) -> str:
    """--usage-location: an ISO 3166-1 alpha-2 code, upper-cased (Graph refuses anything else)."""
    if len(text) != 2 or not text.isascii() or not text.isalpha():
        raise argparse.ArgumentTypeError(f"{text!r} is not a two-letter country code (e.g. US, DE)")
    return text.upper()


def _days(text: str) -> int:
    """--days: a whole number of days from 1 to 365 (the forecast's horizon)."""
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 1 to {MAX_DAYS}")
    return days


def _version() -> str:
    try:
        return version("m365-licensing")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _global_options(p: argparse.ArgumentParser, *, after_command: bool) -> None:
    """--json/--csv/--ids/--debug. After the command they go to ``sub_*`` names and are absent unless given
    (argparse would otherwise let a sub-parser's defaults undo `licensing --json skus`); ``parse`` merges both."""
    prefix = "sub_" if after_command else ""
    unset: object = argparse.SUPPRESS if after_command else None
    off: object = argparse.SUPPRESS if after_command else False
    out = p.add_mutually_exclusive_group()
    for flag, name in (("--json", "JSON"), ("--csv", "CSV")):
        out.add_argument(
            flag, dest=f"{prefix}format", action="store_const", const=flag[2:], default=unset, help=f"{name} output"
        )
    ids = "tables also show ids (skuId, userId, requestId); JSON and CSV always have them"
    p.add_argument("--ids", dest=f"{prefix}ids", action="store_true", default=off, help=ids)
    debug = "show the traceback of an unexpected error"
    p.add_argument("--debug", dest=f"{prefix}debug", action="store_true", default=off, help=debug)


def _users(p: argparse.ArgumentParser) -> None:
    p.add_argument("users", nargs="*", metavar="USER", help="object id or userPrincipalName; several allowed")
    p.add_argument("--from-file", metavar="FILE", help="CSV with a userPrincipalName column (or one user per line)")
    p.add_argument("--parallel", type=int, default=4, metavar="N", help="users in flight at once (default 4)")


def build_parser(doc: str) -> argparse.ArgumentParser:
    """The command-line grammar; ``doc`` (the CLI's docstring) gives the description and the exit codes."""
    fmt = argparse.ArgumentParser(add_help=False)
    _global_options(fmt, after_command=True)
    parser = argparse.ArgumentParser(
        prog="licensing",
        description=doc.splitlines()[0],
        epilog=doc.split("\n", 2)[2],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _global_options(parser, after_command=False)
    sub = parser.add_subparsers(dest="command", required=True)
    skus = sub.add_parser("skus", parents=[fmt], help="seats per SKU (like Get-MsolAccountSku)")
    skus.add_argument("--plans", action="store_true", help="also list each SKU's service plans")
    seats = sub.add_parser("seats", parents=[fmt], help="seats per SKU; --forecast: when scheduled hires outrun them")
    seats.add_argument("--forecast", action="store_true", help="per SKU: hires HR scheduled, the day seats run out")
    seats.add_argument(
        "--days", type=_days, metavar="N", help=f"forecast horizon in days, 1..{MAX_DAYS} (default {DEFAULT_DAYS})"
    )
    assign = sub.add_parser("assign", parents=[fmt], help="assign a SKU with these plans disabled (-LicenseOptions)")
    _users(assign)
    assign.add_argument("--sku", required=True, help="SKU part number, e.g. EMS")
    assign.add_argument("--disable", action="append", default=[], metavar="PLAN", help="plan name; repeat")
    assign.add_argument("--keep-disabled", action="store_true", help="add to the plans already disabled")
    assign.add_argument("--usage-location", type=_country, help="ISO country code to set where the user has none")
    assign.add_argument("--dry-run", action="store_true", help="print the Graph requests instead of sending")
    remove = sub.add_parser("remove", parents=[fmt], help="remove a directly assigned SKU (never a group's)")
    _users(remove)
    remove.add_argument("--sku", required=True, help="SKU part number, e.g. EMS")
    remove.add_argument("--dry-run", action="store_true", help="print the Graph requests instead of sending")
    verify = sub.add_parser("verify", parents=[fmt], help="every plan's status vs the policy (Licenses.ServiceStatus)")
    _users(verify)
    sweep = sub.add_parser("sweep", parents=[fmt], help="find drift now, like the nightly timer (needs storage)")
    preview = "report only, whatever SWEEP_MODE says; saves no delta cursor: the next run still sees the drift"
    sweep.add_argument("--dry-run", action="store_true", help=preview)
    sweep.add_argument("--full", action="store_true", help="read every user, not only changes since last time")
    sweep.add_argument("--out", metavar="FILE", help="also save the drift report (CSV) to FILE")
    status = sub.add_parser("status", parents=[fmt], help="the LicenseStatus table (needs AzureWebJobsStorage)")
    status.add_argument("--outcome", choices=OUTCOMES, help="only rows with this outcome")
    status.add_argument("--since", metavar="AGE|DATE", help=SINCE)
    status.add_argument("--user", help="only this user (object id, or the identifier a request gave)")
    status.add_argument(
        "--recount", action="store_true", help="recount the status page's outcome totals (after an upgrade)"
    )
    events = sub.add_parser("events", parents=[fmt], help="a user's audit trail, newest first (LicenseEvents)")
    events.add_argument("user", metavar="USER", help="object id or userPrincipalName")
    events.add_argument("--since", metavar="AGE|DATE", help=SINCE)
    requeue = sub.add_parser(
        "requeue", parents=[fmt], help="send failed, blocked or action-required users back to license-requests"
    )
    # action-required: once an admin has acted, a requeued user is checked again (and the row updated)
    requeue.add_argument("--outcome", choices=("failed", "blocked", "action-required"), default="failed")
    requeue.add_argument("--since", metavar="AGE|DATE", help=SINCE)
    requeue.add_argument("--user", help="only this user")
    policy = sub.add_parser("policy", help="the policy file").add_subparsers(dest="action", required=True)
    check = policy.add_parser("check", parents=[fmt], help="validate; with --against-tenant resolve and what-if")
    check.add_argument("--policy", metavar="FILE", help="policy file (default: LICENSING_POLICY_PATH)")
    check.add_argument("--against-tenant", action="store_true", help="resolve names, find unreviewed plans")
    check.add_argument("--sample", type=int, default=5, metavar="N", help="what-if for the first N users")
    check.add_argument("--user", action="append", default=[], help="what-if for this user instead; repeat")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse, then merge the global options given before the command with those given after it."""
    args = parser.parse_args(argv)
    after = getattr(args, "sub_format", None)
    if after is not None and args.format not in (None, after):
        parser.error("argument --json/--csv: not allowed with argument --json/--csv (choose one)")
    args.format = after or args.format or "table"
    args.ids = bool(args.ids or getattr(args, "sub_ids", False))
    args.debug = bool(args.debug or getattr(args, "sub_debug", False))
    return args
