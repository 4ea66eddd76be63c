"""What `licensing sweep` prints: a live progress line on stderr, then the run's figures, drift by kind, and its
notes (what it could not do) and failure, if any."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from licensing.cli.output import Cell, Format, console, emit, esc, print_json


@contextmanager
def sweep_progress(*, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A live line on stderr: users scanned and users with drift (the total is unknown while paging)."""
    err = console(stderr=True)
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("sweeping")

        def update(seen: int, drifted: int) -> None:
            bar.update(task, description=f"users scanned {seen:,}  drift found {drifted:,}")

        yield update


def sweep_summary(summary: dict[str, Any], *, fmt: Format) -> None:
    """The run's figures, drift by kind, notes and failure (--csv prints the drift rows instead; see the sweep
    command)."""
    if fmt == "json":
        print_json(summary)
        return
    if summary["read"] == "skipped":
        console().print("[yellow]another sweep is running; this one did nothing[/]")
        return
    figures = [("users scanned", summary["usersSeen"]), ("users with drift", summary["usersDrifted"])]
    figures += [(f"  {kind}", count) for kind, count in summary["drift"].items()]
    figures += [("fixes queued", summary["fixesEnqueued"]), ("Graph requests", summary["graphRequests"])]
    rows: list[list[Cell]] = [[label, f"{count:,}"] for label, count in figures]
    preview = ", dry run: the delta cursor and run history are unchanged" if summary.get("dryRun") else ""
    title = esc(f"Sweep {summary['runId']} ({summary['read']} read, {summary['mode']} mode{preview})")
    emit("table", title=title, columns=["", "count"], rows=rows)
    if summary["report"]:
        console().print(f"report: blob {esc(summary['report'])}")
    for note in summary.get("notes") or []:  # what the run could not do, and what happens about it
        console().print(f"[yellow]note:[/] {esc(note)}")
    if summary.get("outcome") == "failed":
        console().print(f"[red]failed:[/] {esc(summary.get('failure') or 'no reason recorded')}")
