"""The shared Graph write budget against real Azurite, with an injected clock (no real waiting)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from licensing.adapters.storage.write_budget import WriteBudget
from licensing.services.context import Services


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
    """A burst of permits is paced: no slot holds more than its share, later permits wait instead of failing."""
    fake = FakeTime()
    budget = WriteBudget(services.storage, writes=60, window_seconds=30, clock=fake.clock, sleep=fake.sleep)
    for _ in range(12):
        await budget.permit()
    rows = {int(row["RowKey"]): row["Count"] async for row in services.storage.table("WriteBudget").list_entities()}
    assert sum(rows.values()) == 12
    assert all(count <= budget.capacity(slot) for slot, count in rows.items())
    assert fake.slept  # the burst had to wait
    assert fake.now - datetime(2026, 1, 1, tzinfo=UTC) < timedelta(seconds=10)  # ~1.9 writes per second


def test_any_window_of_slots_allows_the_budget_less_the_margin() -> None:
    """Thirty consecutive slots (one window) always add up to writes x 0.95, wherever the window starts."""
    budget = WriteBudget.__new__(WriteBudget)
    budget._per_slot = 100 * 0.95 / 30  # the same arithmetic the constructor uses
    for start in range(0, 300, 7):
        assert sum(budget.capacity(s) for s in range(start, start + 30)) in {94, 95}


async def test_concurrent_workers_share_one_budget(services: Services) -> None:
    """Two budget objects (two workers) over the same table never exceed a slot's share together."""
    fake = FakeTime()
    first = WriteBudget(services.storage, writes=60, window_seconds=10, clock=fake.clock, sleep=fake.sleep)
    second = WriteBudget(services.storage, writes=60, window_seconds=10, clock=fake.clock, sleep=fake.sleep)

    async def worker(budget: WriteBudget, n: int) -> None:
        for _ in range(n):
            await budget.permit()

    await asyncio.gather(worker(first, 8), worker(second, 8))
    rows = {int(row["RowKey"]): row["Count"] async for row in services.storage.table("WriteBudget").list_entities()}
    assert sum(rows.values()) == 16
    assert all(count <= first.capacity(slot) for slot, count in rows.items())
