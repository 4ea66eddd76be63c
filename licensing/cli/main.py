"""`licensing` / `python -m licensing`: the admin CLI.

Every command prints a table, or JSON with --json, or CSV with --csv (one vocabulary of field names across
every command); --json, --csv, --ids and --debug go before or after the command. Exit codes:
  0  done, everything as expected
  1  done, but something is not as expected (verify: a plan differs from the policy; policy check: plans
     the policy never mentions)
  2  bad command line or users file (argparse's usage errors too)
  3  an expected failure, printed as one line per problem on stderr: Graph refused, a user is unknown,
     no seats, the policy or settings are invalid (for many users: at least one of them failed); events:
     a user Graph does not know and no events kept under the name given; storage refused your sign-in or
     you lack a storage data role (the line says which: docs/operations.md#roles-per-command)
  4  an unexpected error (a bug): one line on stderr; --debug shows the traceback
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from licensing.adapters.graph.gateway import GraphGateway
from licensing.cli import events as cli_events
from licensing.cli import policy as cli_policy
from licensing.cli import records as cli_records
from licensing.cli import render
from licensing.cli import seats as cli_seats
from licensing.cli import users as cli_users
from licensing.cli import verify as cli_verify
from licensing.cli.output import problem
from licensing.cli.parser import build_parser, parse
from licensing.cli.users_file import CommandLineError
from licensing.core.errors import LicensingError
from licensing.settings import Settings, StorageSettings

EXIT_USAGE, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 3, 4, 130
# The storage data roles each storage-backed command needs on the account (infra/app/rbac.bicep grants their union
# to the admin group: Azure cannot scope a role to one command).
STORAGE_ROLES = {
    "status": ("Storage Table Data Reader",),
    "status --recount": ("Storage Table Data Contributor",),  # it writes the StatusIndex table
    "events": ("Storage Table Data Reader",),
    "seats": ("Storage Table Data Reader",),  # --forecast only: ScheduledRequests
    "requeue": ("Storage Table Data Reader", "Storage Queue Data Message Sender"),
    "sweep": ("Storage Table Data Contributor", "Storage Queue Data Message Sender", "Storage Blob Data Contributor"),
}
ROLES_DOC = "docs/operations.md#roles-per-command"
# 403 codes of an Entra-authenticated request the data roles (or the account's network rules) refused.
REFUSED = {"AuthorizationPermissionMismatch", "AuthorizationFailure"}
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
    "seats": cli_seats.seats,
    "policy": cli_policy.check,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; expected failures print one line on stderr, never a traceback."""
    args = parse(build_parser(__doc__ or ""), argv)
    name = f"{args.command} {args.action}" if args.command == "policy" else args.command
    storage: StorageSettings | None = None
    try:
        settings = Settings.from_env()
        storage = settings.storage
        return asyncio.run(_run(args, settings))
    except CommandLineError as exc:
        problem(name, exc.message)
        return EXIT_USAGE
    except LicensingError as exc:
        problem(name, access_advice(exc, _role_key(args), storage) or exc.message)
        return EXIT_ERROR
    except KeyboardInterrupt:
        problem(name, "interrupted; users already done stay done (re-run to continue: done users are unchanged)")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `licensing skus --json | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except Exception as exc:
        # A storage SDK call outside the adapter's TransientError wrapping: a refused sign-in is expected, not a bug.
        advice = access_advice(exc, _role_key(args), storage)
        if advice is None and getattr(args, "debug", False):
            traceback.print_exc()
        problem(name, advice or f"unexpected {type(exc).__name__}: {exc} (a bug; --debug shows where)")
        return EXIT_BUG if advice is None else EXIT_ERROR


def _role_key(args: argparse.Namespace) -> str:
    """The command as STORAGE_ROLES names it (a recount writes where a plain status only reads)."""
    return "status --recount" if args.command == "status" and getattr(args, "recount", False) else args.command


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    graph = GraphGateway.from_settings(settings)
    try:
        return await COMMANDS[args.command](args, settings, graph)
    finally:
        await graph.close()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and what it was raised from (the storage adapter wraps SDK errors as TransientError from them); a
    ``raise ... from None`` ends the chain (the Graph adapter's own message already says what to do)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def access_advice(exc: BaseException, command: str, storage: StorageSettings | None) -> str | None:
    """What to do when storage refused the admin's sign-in or a data role is missing; None for any other error."""
    account = storage.account if storage else "the storage account"
    for cause in _chain(exc):
        if isinstance(cause, ClientAuthenticationError):
            if storage and storage.credential == "managed-identity":
                return (
                    f"storage refused the managed identity ({type(cause).__name__}); off Azure, unset "
                    f"AzureWebJobsStorage__credential to use your az login instead; see {ROLES_DOC}"
                )
            return (
                f"could not sign in to storage account {account} ({type(cause).__name__}): run az login "
                f"(with --tenant <directory id> if you have several) and try again; see {ROLES_DOC}"
            )
        if refused := _refused_code(cause):
            names = STORAGE_ROLES.get(command, STORAGE_ROLES["sweep"])
            roles = f"the {names[0]} role" if len(names) == 1 else f"the roles {', '.join(names)}"
            network = " (or its network rules refuse this address)" if refused == "AuthorizationFailure" else ""
            return (
                f"storage account {account} refused access{network}: you need {roles} on {account} for "
                f"`licensing {command}` (a new role assignment takes a few minutes to apply); see {ROLES_DOC}"
            )
    return None


def _refused_code(exc: BaseException) -> str | None:
    """The storage error code of a 403 the data roles (or network rules) gave an Entra sign-in, else None."""
    if not isinstance(exc, HttpResponseError) or exc.status_code != 403:
        return None
    code = getattr(exc, "error_code", None)  # set by the storage SDKs' error mapping: a str enum or a str
    code = str(getattr(code, "value", code))
    return code if code in REFUSED else None
