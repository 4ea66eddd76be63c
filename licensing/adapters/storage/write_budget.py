"""A write budget shared by every worker: identity writes stay under Graph's per-app limit instead of
discovering it through 429s. Fixed slots of the window in one Table row each, counted under ETags."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from licensing.adapters.storage.account import BUDGET_TABLE, Storage, transient

log = logging.getLogger(__name__)
SLOTS = 30  # the window is cut in thirty: writes are paced, a burst can use one slot's share at once
MARGIN = 0.95  # Graph counts a sliding window; our fixed slots can straddle it by one slot, kept in reserve


class WriteBudget:
    """``await budget.permit()`` before each assignLicense / PATCH; it waits when this slot is spent."""

    def __init__(
        self,
        storage: Storage,
        *,
        writes: int,
        window_seconds: float,
        clock: Callable[[], datetime],
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self._table = storage.table(BUDGET_TABLE)
        self._slot_seconds = window_seconds / SLOTS
        self._per_slot = writes * MARGIN / SLOTS  # fractional: slots take turns carrying the remainder
        self._clock = clock
        self._sleep = sleep
        self.waited = 0.0  # seconds spent waiting, for logs and benchmarks

    async def permit(self) -> None:
        """Count one write in the current slot, waiting for the next slot while this one is full."""
        while True:
            now = self._clock().timestamp()
            slot = int(now // self._slot_seconds)
            if await self._take(slot):
                return
            wait = (slot + 1) * self._slot_seconds - now + random.uniform(0, 0.05)  # noqa: S311  # jitter
            self.waited += wait
            await self._sleep(wait)  # type: ignore[misc]  # asyncio.sleep or a test double

    def capacity(self, slot: int) -> int:
        """Writes allowed in one slot: the share per slot, with the fractions spread so that any run of SLOTS
        consecutive slots allows writes x MARGIN in total."""
        return max(math.floor((slot + 1) * self._per_slot) - math.floor(slot * self._per_slot), 0)

    async def _take(self, slot: int) -> bool:
        key = ("graph-writes", f"{slot:012d}")
        with transient("count a Graph write"):
            for _ in range(20):  # contention from other workers: re-read and try again
                try:
                    row = await self._table.get_entity(*key)
                except ResourceNotFoundError:
                    if self.capacity(slot) == 0:
                        return False
                    try:
                        await self._table.create_entity({"PartitionKey": key[0], "RowKey": key[1], "Count": 1})
                    except ResourceExistsError:
                        continue
                    return True
                if row["Count"] >= self.capacity(slot):
                    return False
                counted = {"PartitionKey": key[0], "RowKey": key[1], "Count": row["Count"] + 1}
                try:
                    await self._table.update_entity(
                        counted, etag=row.metadata["etag"], match_condition=MatchConditions.IfNotModified
                    )
                except ResourceModifiedError:
                    await asyncio.sleep(random.uniform(0, 0.02))  # noqa: S311  # spread the retries
                    continue
                return True
        log.warning("write budget row for slot %d too contended; writing anyway", slot)
        return True
