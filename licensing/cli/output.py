"""Output primitives for the CLI: every command prints a rich table, JSON (--json) or CSV (--csv).

Tables and JSON go to stdout; progress bars and per-item errors go to stderr, so `--json`/`--csv` output can
be piped into another tool whatever happened along the way.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

Format = Literal["table", "json", "csv"]
Cell = str | int | float | bool | None
_STYLE = {
    "Success": "green",
    "Disabled": "dim",
    "Error": "red",
    "verified": "green",
    "failed": "red",
    "removed": "green",
    "assigned": "green",
    "blocked": "magenta",
    "rejected": "red",
    "action-required": "bold yellow",
}
NUMERIC = {"enabled", "consumed", "free", "grace", "suspended", "count"}


def console(*, stderr: bool = False) -> Console:
    """A console that never reflows or highlights data (UPNs and GUIDs stay intact)."""
    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def esc(text: object) -> str:
    """Data as literal text in rich markup: a reason or UPN holding "[bold]" or "[/]" is printed, not obeyed."""
    return escape(str(text))


def styled(text: str) -> str:
    """Colour a status word the way the tables do; any other text is escaped (it may come from a message)."""
    style = _STYLE.get(text, "yellow" if text.startswith("Pending") or text == "pending" else "")
    return f"[{style}]{esc(text)}[/]" if style else esc(text)


def print_json(data: object) -> None:
    """Indented, key-sorted JSON on stdout (datetimes as ISO text)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))  # noqa: T201  # the CLI's output


def print_csv(columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """RFC 4180 CSV with a header row on stdout."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if c is None else c for c in row] for row in rows)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, style: bool = True) -> None:
    """A rich table; status words coloured, every cell escaped. ``title`` is markup: escape data in it."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in NUMERIC else "left", overflow="fold")
    for row in rows:
        table.add_row(*(styled(c) if style and isinstance(c, str) else ("" if c is None else esc(c)) for c in row))
    console().print(table)


def emit(
    fmt: Format, *, title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], data: object | None = None
) -> None:
    """One result set in the chosen format; ``data`` is the JSON shape when it is richer than the rows."""
    if fmt == "json":
        print_json(data if data is not None else [dict(zip(columns, row, strict=True)) for row in rows])
    elif fmt == "csv":
        print_csv(columns, rows)
    else:
        print_table(title, columns, rows)


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool) -> Iterator[Callable[[], None]]:
    """A bar on stderr (only when stderr is a terminal); yields ``advance()``."""
    err = console(stderr=True)
    if not enabled or not err.is_terminal:
        yield lambda: None
        return
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def problem(command: str, message: str) -> None:
    """One line on stderr: what went wrong, for one item or the whole command."""
    print(f"licensing {command}: {message}", file=sys.stderr)  # noqa: T201  # the CLI's error channel
