"""`licensing` / `python -m licensing`: the admin CLI.

Every command prints a table, or JSON with --json, or CSV with --csv (one vocabulary of field names across
every command); --json, --csv, --ids and --debug go before or after the command. Exit codes:
  0  done, everything as expected
  1  done, but something is not as expected (verify: a plan differs from the policy; policy check: plans
     the policy never mentions)
  2  bad command line or users file (argparse's usage errors too)
  3  an expected failure, printed as one line per problem on stderr: Graph refused, a user is unknown,
     no seats, the policy or settings are invalid (for many users: at least one of them failed); events:
     a user Graph does not know and no events kept under the name given
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
from licensing.cli import events as cli_events
from licensing.cli import policy as cli_policy
from licensing.cli import records as cli_records
from licensing.cli import render
from licensing.cli import users as cli_users
from licensing.cli import verify as cli_verify
from licensing.cli.output import problem
from licensing.cli.parser import build_parser, parse
from licensing.cli.users_file import CommandLineError
from licensing.core.errors import LicensingError
from licensing.settings import Settings

EXIT_USAGE, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 3, 4, 130
Command = Callable[[argparse.Namespace, Settings, GraphGateway], Awaitable[int]]


async def _skus(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    catalog = await graph.catalog()
    render.skus(catalog, plans=args.plans, fmt=args.format, low=settings.low_seat_threshold, ids=args.ids)
    return 0


COMMANDS: dict[str, Command] = {
    "skus": _skus,
    "assign": cli_users.assign,
    "remove": cli_users.remove,
    "verify": cli_verify.verify,
    "sweep": cli_records.sweep,
    "status": cli_records.status,
    "events": cli_events.events,
    "requeue": cli_records.requeue,
    "policy": cli_policy.check,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; expected failures print one line on stderr, never a traceback."""
    args = parse(build_parser(__doc__ or ""), argv)
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
