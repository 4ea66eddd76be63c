"""Reading the CLI's users: names on the command line and/or `--from-file users.csv`. Pure, no I/O.

The file is what an admin exports from Excel or the Entra portal (comma, semicolon or tab separated): a header
row naming the columns (``userPrincipalName`` — or ``user``, ``upn``, ``id``, ``mail`` — and optionally
``usageLocation``), or a plain list with one user per line and no header. Blank lines and lines starting with
``#`` are skipped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from licensing.core.errors import InvalidRequest

USER_COLUMNS = ("userprincipalname", "user", "upn", "id", "objectid", "mail")
LOCATION_COLUMNS = ("usagelocation", "location")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


class CommandLineError(InvalidRequest):
    """A bad argument or users file (the CLI exits 2, like any usage error)."""


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class UserRow:
    """One user to act on, with the usage location the file gives (if any)."""

    user: str
    usage_location: str | None = None


def _looks_like_user(cell: str) -> bool:
    return "@" in cell or bool(_GUID.match(cell))


def parse_users_file(text: str, *, source: str) -> list[UserRow]:
    """Users from a CSV/text file; InvalidRequest lists every bad line (with its number) and how to fix it."""
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    lines = [(n, row) for n, row in enumerate(reader, start=1) if _meaningful(row)]
    if not lines:
        raise CommandLineError(f"{source} lists no users; put one userPrincipalName per line or a CSV with a header")
    first = [c.strip().casefold() for c in lines[0][1]]
    user_col = next((first.index(c) for c in USER_COLUMNS if c in first), None)
    if user_col is None and _looks_like_user(lines[0][1][0].strip()):
        user_col, location_col, body = 0, None, lines  # a plain list, no header
    elif user_col is None:
        raise CommandLineError(
            f"{source} line {lines[0][0]}: no user column in the header {lines[0][1]!r}; "
            "name one of userPrincipalName, user, upn, id, mail (usageLocation optional)"
        )
    else:
        location_col = next((first.index(c) for c in LOCATION_COLUMNS if c in first), None)
        body = lines[1:]
    rows, problems = [], []
    for number, row in body:
        user = row[user_col].strip() if user_col < len(row) else ""
        location = row[location_col].strip() if location_col is not None and location_col < len(row) else ""
        if not user:
            problems.append(f"line {number}: no user")
        elif location and not _COUNTRY.match(location):
            problems.append(f"line {number}: usageLocation {location!r} is not a two-letter country code (e.g. US)")
        else:
            rows.append(UserRow(user, location.upper() or None))
    if problems:
        raise CommandLineError(f"{source}: " + "; ".join(problems[:20]) + (" …" if len(problems) > 20 else ""))
    return rows


def _delimiter(text: str) -> str:
    """Comma, or what the header line uses instead: Excel writes ';' in locales with a decimal comma, tabs too."""
    first = next((line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    return max((",", ";", "\t"), key=first.count) if any(d in first for d in ";\t") else ","


def _meaningful(row: Sequence[str]) -> bool:
    return any(c.strip() for c in row) and not row[0].lstrip().startswith("#")


def combine(names: Sequence[str], from_file: Sequence[UserRow]) -> list[UserRow]:
    """Command-line users then the file's, each user once (case-insensitive), in first-seen order."""
    seen: dict[str, UserRow] = {}
    for row in [*(UserRow(n) for n in names), *from_file]:
        seen.setdefault(row.user.casefold(), row)
    if not seen:
        raise CommandLineError("no users given: name them (USER …) or use --from-file users.csv")
    return list(seen.values())
