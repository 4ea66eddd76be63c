"""`licensing events USER [--since AGE|DATE]`: a user's audit trail (LicenseEvents), newest first.

Events are kept under the user's object id once Graph has named them, and under the lower-cased identifier the
request gave before that (an unknown user, a request that failed before the user was read): both are read. A
user Graph no longer knows (deleted, or never there) is looked up under what was typed, so a leaver's or a
rejected request's history still shows.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from licensing.adapters.graph.gateway import GraphGateway
from licensing.cli import records_render
from licensing.cli.output import problem
from licensing.cli.records import opened, read_table
from licensing.cli.since import cutoff
from licensing.core.errors import LicensingError
from licensing.core.records import AuditEvent
from licensing.settings import Settings

EXIT_ERROR = 3


async def _who(graph: GraphGateway, user: str) -> tuple[str, set[str], str]:
    """How to show the user, the keys their events may be kept under, and why Graph could not say (or "")."""
    try:
        found = await graph.get_user(user)
    except LicensingError as exc:  # the audit trail is in storage: Graph only turns a UPN into an id
        return user, {user, user.lower()}, exc.message
    return found.user_principal_name, {found.id, found.user_principal_name.lower(), user.lower()}, ""


async def events(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """The user's LicenseEvents under every key they may have, merged newest first, filtered by --since."""
    oldest = cutoff(args.since, now=datetime.now(UTC))
    async with opened(settings) as storage:  # first: without AzureWebJobsStorage there is nothing to ask Graph for
        shown, keys, unresolved = await _who(graph, args.user)

        async def read() -> list[AuditEvent]:
            return [e for key in sorted(keys) for e in await storage.events(key)]

        found, note = await read_table("LicenseEvents", read)
    found = sorted((e for e in found if oldest is None or e.at >= oldest), key=lambda e: (e.at, e.kind), reverse=True)
    if unresolved and not found:
        problem("events", f"{args.user}: {unresolved}; and no events are kept under {args.user!r}")
        return EXIT_ERROR
    if unresolved:
        problem("events", f"{args.user}: {unresolved}; showing the events kept under what was given")
    records_render.events(found, user=shown, fmt=args.format, ids=args.ids, note=note)
    return 0
