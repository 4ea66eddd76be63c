"""The shared Graph write budget against real Azurite, with an injected clock (no real waiting)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from licensing.composition import Services
from licensing.write_budget import WriteBudget


class FakeTime:
    """A clock that only moves when the budget sleeps."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


async def test_writes_beyond_a_slot_wait_for_the_next_slot(services: Services) -> None:
    """40 writes per 10 s, less the 10 % margin = 3 per 1-s slot: the 4th and 7th permits wait, none refused."""
    fake = FakeTime()
    budget = WriteBudget(services.storage, writes=40, window_seconds=10, clock=fake.clock, sleep=fake.sleep)
    for _ in range(7):
        await budget.permit()
    assert len(fake.slept) == 2
    assert all(0 < s <= 1.1 for s in fake.slept)
    assert fake.now - datetime(2026, 1, 1, tzinfo=UTC) >= timedelta(seconds=2)


async def test_concurrent_workers_share_one_budget(services: Services) -> None:
    """Two budget objects (two workers) over the same table never exceed the slot together."""
    fake = FakeTime()
    first = WriteBudget(services.storage, writes=60, window_seconds=10, clock=fake.clock, sleep=fake.sleep)
    second = WriteBudget(services.storage, writes=60, window_seconds=10, clock=fake.clock, sleep=fake.sleep)

    async def worker(budget: WriteBudget, n: int) -> None:
        for _ in range(n):
            await budget.permit()

    await asyncio.gather(worker(first, 8), worker(second, 8))
    counts = [row["Count"] async for row in services.storage.table("WriteBudget").list_entities()]
    assert sum(counts) == 16
    assert max(counts) <= 5  # 60 per 10 s less the margin = 5 per 1-s slot, across both workers
