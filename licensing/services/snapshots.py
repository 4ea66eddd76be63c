"""The daily snapshot: the day's seats in use per SKU (the status page's seats chart) and a recount of the status
counters, so a counter write lost between two writes (counters.py) is right again by the next morning."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date

from licensing.adapters.storage.counters import reconcile, record_seats
from licensing.services.context import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DailySnapshot:
    """What the day's snapshot kept: consumed seats per SKU part number, and the recounted outcome totals."""

    day: date
    seats: tuple[tuple[str, int], ...]
    totals: tuple[tuple[str, int], ...]


async def take_daily_snapshot(services: Services) -> DailySnapshot:
    """Read the catalog fresh (Graph), store the UTC day's consumed seats per SKU, then recount the counters.

    The seats go first: a recount that gives up (counters kept moving, storage failing) raises TransientError
    after the day's seats are safe, and the next run recounts again.
    """
    day = services.clock().astimezone(UTC).date()
    catalog = await services.graph.catalog(fresh=True)
    seats = {sku.part_number: sku.consumed for sku in catalog.skus}
    await record_seats(services.storage, day=day, seats=seats)
    totals = await reconcile(services.storage)
    log.info(
        "daily snapshot %s: seats of %d SKUs kept, %d status rows recounted", day, len(seats), sum(totals.values())
    )
    return DailySnapshot(day, tuple(sorted(seats.items())), tuple(totals.items()))
