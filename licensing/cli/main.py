"""`licensing` / `python -m licensing`: the admin CLI.

Every command prints a table, or JSON with --json, or CSV with --csv. Exit codes:
  0  done, everything as expected
  1  done, but something is not as expected (verify: a plan differs from the policy; policy check: plans
     the policy never mentions)
  2  bad command line or users file (argparse's usage errors too)
  3  an expected failure, printed as one line per problem on stderr: Graph refused, a user is unknown,
     no seats, the policy or settings are invalid (for many users: at least one of them failed)
  4  an unexpected error (a bug): one line on stderr; --debug shows the traceback
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence

from licensing.adapters.graph.gateway import GraphGateway
from licensing.cli import policy as cli_policy
from licensing.cli import records as cli_records
from licensing.cli import render
from licensing.cli import users as cli_users
from licensing.cli.output import problem
from licensing.cli.users_file import CommandLineError
from licensing.core.errors import LicensingError
from licensing.core.records import OUTCOMES
from licensing.settings import Settings

EXIT_USAGE, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 3, 4, 130
Command = Callable[[argparse.Namespace, Settings, GraphGateway], Awaitable[int]]


def _country(text: str) -> str:
    """--usage-location: an ISO 3166-1 alpha-2 code, upper-cased (Graph refuses anything else)."""
    if len(text) != 2 or not text.isascii() or not text.isalpha():
        raise argparse.ArgumentTypeError(f"{text!r} is not a two-letter country code (e.g. US, DE)")
    return text.upper()


def _users(p: argparse.ArgumentParser) -> None:
    p.add_argument("users", nargs="*", metavar="USER", help="object id or userPrincipalName; several allowed")
    p.add_argument("--from-file", metavar="FILE", help="CSV with a userPrincipalName column (or one user per line)")
    p.add_argument("--parallel", type=int, default=4, metavar="N", help="users in flight at once (default 4)")


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    fmt = argparse.ArgumentParser(add_help=False)
    out = fmt.add_mutually_exclusive_group()
    out.add_argument("--json", dest="format", action="store_const", const="json", help="JSON output")
    out.add_argument("--csv", dest="format", action="store_const", const="csv", help="CSV output")
    fmt.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    fmt.set_defaults(format="table")
    parser = argparse.ArgumentParser(
        prog="licensing",
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    skus = sub.add_parser("skus", parents=[fmt], help="seats per SKU (like Get-MsolAccountSku)")
    skus.add_argument("--plans", action="store_true", help="also list each SKU's service plans")
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
    status.add_argument("--since", metavar="AGE", help="only rows updated within AGE, e.g. 7d, 12h, 30m")
    status.add_argument("--user", help="only this user (object id, or the identifier a request gave)")
    requeue = sub.add_parser(
        "requeue", parents=[fmt], help="send failed, blocked or action-required users back to license-requests"
    )
    # action-required: once an admin has acted, a requeued user is checked again (and the row updated)
    requeue.add_argument("--outcome", choices=("failed", "blocked", "action-required"), default="failed")
    requeue.add_argument("--since", metavar="AGE", help="only rows updated within AGE, e.g. 7d")
    requeue.add_argument("--user", help="only this user")
    policy = sub.add_parser("policy", help="the policy file").add_subparsers(dest="action", required=True)
    check = policy.add_parser("check", parents=[fmt], help="validate; with --against-tenant resolve and what-if")
    check.add_argument("--policy", metavar="FILE", help="policy file (default: LICENSING_POLICY_PATH)")
    check.add_argument("--against-tenant", action="store_true", help="resolve names, find unreviewed plans")
    check.add_argument("--sample", type=int, default=5, metavar="N", help="what-if for the first N users")
    check.add_argument("--user", action="append", default=[], help="what-if for this user instead; repeat")
    return parser


async def _skus(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    render.skus(await graph.catalog(), plans=args.plans, fmt=args.format, low=settings.low_seat_threshold)
    return 0


COMMANDS: dict[str, Command] = {
    "skus": _skus,
    "assign": cli_users.assign,
    "remove": cli_users.remove,
    "verify": cli_users.verify,
    "sweep": cli_records.sweep,
    "status": cli_records.status,
    "requeue": cli_records.requeue,
    "policy": cli_policy.check,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; expected failures print one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    name = f"{args.command} {args.action}" if args.command == "policy" else args.command
    try:
        settings = Settings.from_env()
        return asyncio.run(_run(args, settings))
    except CommandLineError as exc:
        problem(name, exc.message)
        return EXIT_USAGE
    except LicensingError as exc:
        problem(name, exc.message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        problem(name, "interrupted; users already done stay done (re-run to continue: done users are unchanged)")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `licensing skus --json | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except Exception as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        problem(name, f"unexpected {type(exc).__name__}: {exc} (a bug; --debug shows where)")
        return EXIT_BUG


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    graph = GraphGateway.from_settings(settings)
    try:
        return await COMMANDS[args.command](args, settings, graph)
    finally:
        await graph.close()
