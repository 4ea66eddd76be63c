"""Output primitives for the CLI: every command prints a rich table, JSON (--json) or CSV (--csv).

Tables and JSON go to stdout; progress bars and per-item errors go to stderr, so `--json`/`--csv` output can
be piped into another tool whatever happened along the way. JSON and CSV share one vocabulary (docs/admin-guide.md
table): a CSV header is the JSON field name, a CSV list is its items separated by spaces, a mapping is
``name=value`` pairs, a boolean is ``true``/``false`` and a time is ISO 8601. Tables are for people: they fit
the console's width, wrap long text between words, and show ids (GUIDs, request ids) only with ``--ids``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Literal

from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

Format = Literal["table", "json", "csv"]
Cell = str | int | float | bool | datetime | Sequence[str] | Mapping[str, str] | None
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
    "not-assigned": "yellow",
}
NUMERIC = {"enabled", "consumed", "free", "warning", "suspended", "count", "low", "scheduled"}
# Table headings for people; JSON and CSV always use the field name itself.
HEADINGS = {
    "sku": "SKU",
    "warning": "grace",
    "updatedAt": "updated (UTC)",
    "disabledPlans": "disabled plans",
    "plan": "ServicePlan",  # verify's tables keep the names (Get-MsolUser).Licenses.ServiceStatus used
    "status": "ProvisioningStatus",
    "expected": "Expected",
    "runsOutOn": "runs out on",
}


def console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A console that never highlights data. Tables fit its width (the terminal's; COLUMNS or 80 when piped) and
    wrap between words; on a terminal, lines of text wrap between words too, while piped they stay one line each
    (a sentence split by newlines would defeat grep)."""
    out = Console(highlight=False, stderr=stderr, width=width)
    out.soft_wrap = not out.is_terminal
    return out


def esc(text: object) -> str:
    """Data as literal text in rich markup: a reason or UPN holding "[bold]" or "[/]" is printed, not obeyed."""
    return escape(str(text))


def styled(text: str) -> str:
    """Colour a status word the way the tables do; any other text is escaped (it may come from a message)."""
    style = _STYLE.get(text, "yellow" if text.startswith("Pending") or text == "pending" else "")
    return f"[{style}]{esc(text)}[/]" if style else esc(text)


def _json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def print_json(data: object) -> None:
    """Indented, key-sorted JSON on stdout (datetimes as ISO 8601 text)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=_json_default))  # noqa: T201  # the CLI's output


def csv_cell(value: Cell) -> str | int | float:
    """One value as a CSV cell, in the JSON vocabulary's terms (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str | int | float):
        return value
    return " ".join(value)


def print_csv(columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """RFC 4180 CSV with a header row on stdout."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([csv_cell(c) for c in row] for row in rows)


def table_cell(value: Cell, *, style: bool) -> str:
    """One value as table markup: status words coloured, lists comma-separated, everything escaped."""
    if isinstance(value, bool) or value is None:
        return "yes" if value else ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, Mapping):
        return esc(", ".join(f"{k} {v}" for k, v in value.items()))
    if isinstance(value, str):
        return styled(value) if style else esc(value)
    if isinstance(value, int | float):
        return esc(value)
    return esc(", ".join(value) or "none")  # a list: an empty one (no plans disabled) says so


def fit_widths(cells: Sequence[Sequence[str]], room: int) -> list[int] | None:
    """Column widths (padding excluded) for columns of plain text that must share ``room`` characters: None when
    every column fits on one line as it is; else each column keeps its longest word whole (an id, a UPN, a word of
    a reason) and the rest of the room goes, a character at a time, to the column that would take the most lines.
    When even the longest words do not fit, the table is wider than ``room``: a cut id is worse than a long line."""
    longest = [max((cell_len(line) for c in column for line in c.splitlines() or [""]), default=0) for column in cells]
    if sum(longest) <= room:
        return None
    widths = [max((cell_len(word) for c in column for word in c.split()), default=1) or 1 for column in cells]
    for _ in range(max(room - sum(widths), 0)):
        # lines each column would take at its width: widen the tallest (the reason, usually) first
        lines = [whole / width if whole > width else 0 for whole, width in zip(longest, widths, strict=True)]
        tallest = max(range(len(widths)), key=lines.__getitem__)
        if not lines[tallest]:
            break
        widths[tallest] += 1
    return widths


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, style: bool = True) -> None:
    """A rich table that fits the console and wraps between words (see ``fit_widths``); ``title`` is markup:
    escape data in it."""
    headings = [HEADINGS.get(column, column) for column in columns]
    markup = [[table_cell(c, style=style) for c in row] for row in rows]
    plain = [[heading, *(Text.from_markup(row[i]).plain for row in markup)] for i, heading in enumerate(headings)]
    out = console()
    room = out.width - 3 * len(columns) - 1  # a border left of each column and at the end, a space either side
    fitted = fit_widths(plain, room)
    if fitted and sum(fitted) > room:
        out = console(width=sum(fitted) + 3 * len(columns) + 1)
    widths: list[int | None] = list(fitted) if fitted else [None] * len(columns)
    table = Table(title=title)
    for column, heading, width in zip(columns, headings, widths, strict=True):
        justify: JustifyMethod = "right" if column in NUMERIC else "left"
        table.add_column(heading, justify=justify, overflow="fold", width=width)
    for row in markup:
        table.add_row(*row)
    out.print(table)


def emit(
    fmt: Format,
    *,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    data: object | None = None,
    shown: Sequence[str] | None = None,
) -> None:
    """One result set in the chosen format; ``data`` is the JSON shape when it is richer than the rows, and
    ``shown`` the columns a table shows (default: all)."""
    if fmt == "json":
        print_json(data if data is not None else [dict(zip(columns, row, strict=True)) for row in rows])
    elif fmt == "csv":
        print_csv(columns, rows)
    else:
        keep = [columns.index(c) for c in (shown or columns)]
        print_table(title, [columns[i] for i in keep], [[row[i] for i in keep] for row in rows])


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
