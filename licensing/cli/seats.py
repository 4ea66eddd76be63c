"""`licensing seats [--forecast] [--days N]`: seats per SKU, or when the hires HR has scheduled will outrun them.

Exit 1 when a SKU runs out within the horizon (like verify's "not as expected"), 0 otherwise.
"""

from __future__ import annotations

import argparse

from licensing.adapters.graph.gateway import GraphGateway
from licensing.cli import render
from licensing.cli.output import Cell, Format, emit, esc
from licensing.cli.records import opened
from licensing.cli.users_file import CommandLineError
from licensing.core.forecast import DEFAULT_DAYS, Forecast
from licensing.services.context import Services
from licensing.services.forecast import take_forecast
from licensing.settings import Settings

EXIT_RUNS_OUT = 1
COLUMNS = ("sku", "free", "scheduled", "runsOutOn", "message")


async def seats(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """The seats table (as `skus` prints it); with --forecast, per SKU the hires scheduled within --days and the
    date they outrun the free seats: exit 1 when one does."""
    if not args.forecast:
        if args.days is not None:
            raise CommandLineError("--days applies to --forecast only (licensing seats --forecast --days N)")
        catalog = await graph.catalog()
        render.skus(catalog, plans=False, fmt=args.format, low=settings.low_seat_threshold, ids=args.ids)
        return 0
    async with opened(settings) as storage:
        taken = await take_forecast(Services(settings, graph, storage), days=args.days or DEFAULT_DAYS)
    show_forecast(taken, args.format)
    return EXIT_RUNS_OUT if taken.running_out else 0


def show_forecast(taken: Forecast, fmt: Format) -> None:
    """One row per SKU: free seats now, hires scheduled within the horizon, the date they outrun the seats."""
    data = [s.as_json() for s in taken.skus]
    rows: list[list[Cell]] = [[sku[column] for column in COLUMNS] for sku in data]
    title = f"Seat forecast: hires starting by {esc(taken.last_day.isoformat())} (next {taken.days} days)"
    emit(fmt, title=title, columns=COLUMNS, rows=rows, data=data)
