"""Status counters kept at write time (Azurite): they follow the status table, survive concurrency, and reconcile."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from azure.core.exceptions import ServiceRequestError

from licensing.adapters.storage import counters, failure_index
from licensing.adapters.storage.account import Storage
from licensing.adapters.storage.counters import (
    history,
    outcome_totals,
    recent_failures,
    reconcile,
    record_seats,
)
from licensing.core.errors import TransientError
from licensing.core.records import LEAVER, OUTCOMES, Outcome, StatusRecord
from licensing.services.context import Services
from licensing.services.overview import Tally

T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def row(user: str, outcome: Outcome, *, sku: str = "EMS", at: datetime = T0) -> StatusRecord:
    """A status row of ``user``'s ``sku`` at ``at``."""
    return StatusRecord(user, sku, f"{user}@contoso.example", outcome, f"{outcome} because", "r", "hr", updated_at=at)


async def scanned(storage: Storage) -> dict[str, int]:
    """What today's scan (overview.Tally) counts, every known outcome listed."""
    tally = Tally()
    async for status in storage.statuses():
        tally.add(status)
    return dict(tally.outcomes())


def only(**counts: int) -> dict[str, int]:
    """Every known outcome at zero but those given (``action_required`` for action-required)."""
    return {outcome: counts.get(outcome.replace("-", "_"), 0) for outcome in OUTCOMES}


async def test_counters_follow_creates_transitions_rewrites_and_deletes(services: Services) -> None:
    """Old outcome -1, new +1 on a change; nothing on a same-outcome rewrite; -1 on delete; the tombstone never."""
    storage = services.storage
    await storage.put_status(row("u1", "assigned"))
    await storage.put_status(row("u2", "failed", sku="-"))  # request-level rows count
    await storage.put_status(row("u3", "removed", sku=LEAVER))  # the tombstone does not
    await storage.put_status(row("u1", "verified", at=T0 + timedelta(minutes=1)))
    await storage.put_status(row("u1", "verified", at=T0 + timedelta(minutes=2)))
    await storage.put_status(row("u1", "pending", at=T0 - timedelta(minutes=1)))  # older: kept out, not counted
    assert await outcome_totals(storage) == only(verified=1, failed=1)
    await storage.delete_status("u2", "-")
    await storage.delete_status("u2", "-")  # already gone: nothing moves
    await storage.delete_status("u3", LEAVER)
    assert await outcome_totals(storage) == only(verified=1) == await scanned(storage)


async def test_totals_are_zero_before_any_write(services: Services) -> None:
    """A fresh table: every known outcome at zero, in lifecycle order."""
    totals = await outcome_totals(services.storage)
    assert list(totals) == list(OUTCOMES)
    assert set(totals.values()) == {0}


async def test_many_concurrent_writers_on_two_instances_agree_with_a_full_scan(services: Services) -> None:
    """200 writes over 50 users from 8 tasks on two Storage instances: the counters equal the scan afterwards."""
    assert services.settings.storage is not None
    second = Storage.from_settings(services.settings.storage)
    rng = random.Random(13)
    writes = [
        (
            rng.choice((services.storage, second)),
            row(f"u{rng.randrange(50)}", rng.choice(OUTCOMES), at=T0 + timedelta(seconds=rng.randrange(600))),
        )
        for _ in range(200)
    ]
    queue: asyncio.Queue[tuple[Storage, StatusRecord]] = asyncio.Queue()
    for write in writes:
        queue.put_nowait(write)

    async def writer() -> None:
        while not queue.empty():
            storage, status = queue.get_nowait()
            if status.outcome == "removed" and status.user_key.endswith("7"):
                await storage.delete_status(status.user_key, status.sku)  # deletes race the writes too
            else:
                await storage.put_status(status)

    try:
        await asyncio.wait_for(asyncio.gather(*(writer() for _ in range(8))), timeout=120)
    finally:
        await second.close()
    assert await outcome_totals(services.storage) == await scanned(services.storage)
    recorded = sum(n for point in await history(services.storage, days=2, today=T0.date()) for _, n in point.outcomes)
    assert 50 <= recorded <= 200  # every creation or change of outcome, on the day of its UpdatedAt


async def test_a_crash_between_the_status_write_and_the_counters_is_repaired_by_reconcile(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage failing after the status write: the row is written, the totals are off, reconcile puts them right."""
    storage = services.storage
    await storage.put_status(row("u1", "assigned"))

    async def storage_down(*args: object, **kwargs: object) -> None:
        raise ServiceRequestError("connection reset")

    monkeypatch.setattr(counters, "count", storage_down)
    await storage.put_status(row("u1", "verified", at=T0 + timedelta(minutes=1)))
    await storage.put_status(row("u2", "failed"))
    monkeypatch.undo()
    assert (await storage.status("u1", "EMS"), await storage.status("u2", "EMS")) != (None, None)
    assert await outcome_totals(storage) == only(assigned=1)  # off: the two transitions were never counted
    assert await reconcile(storage) == only(verified=1, failed=1)
    assert await outcome_totals(storage) == only(verified=1, failed=1) == await scanned(storage)
    await storage.put_status(row("u2", "verified", at=T0 + timedelta(minutes=2)))  # counting resumes from there
    assert await outcome_totals(storage) == only(verified=2) == await scanned(storage)


async def test_reconcile_replaces_nothing_when_a_counter_moves_during_its_scan(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transition counted while the recount scans makes it retry; one on every try leaves the totals and says so."""
    storage = services.storage
    await storage.put_status(row("u0", "assigned"))
    scan = Storage.statuses
    moved = iter(range(100))

    async def scan_while_writing(self: Storage, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        await storage.put_status(row(f"w{next(moved)}", "pending"))  # another worker's write, mid-scan
        async for status in scan(self, *args, **kwargs):  # type: ignore[arg-type]
            yield status

    monkeypatch.setattr(Storage, "statuses", scan_while_writing)
    with pytest.raises(TransientError, match="moved during each of 2 recounts"):
        await reconcile(storage, attempts=2)
    monkeypatch.undo()
    assert await outcome_totals(storage) == only(assigned=1, pending=2) == await scanned(storage)


async def test_recent_failures_are_newest_first_and_leave_out_rows_fixed_since(services: Services) -> None:
    """The failure index lists failing rows newest first, once each, re-read: a row fixed since is left out."""
    storage = services.storage
    for i, outcome in enumerate(("failed", "blocked", "rejected", "action-required", "verified")):
        await storage.put_status(row(f"u{i}", outcome, at=T0 + timedelta(minutes=i)))  # type: ignore[arg-type]
    await storage.put_status(row("u0", "failed", at=T0 + timedelta(minutes=9)))  # failing again, later
    await storage.put_status(row("u1", "verified", at=T0 + timedelta(minutes=10)))  # fixed
    found = await recent_failures(storage, limit=20)
    assert [(r.user_key, r.outcome) for r in found] == [("u0", "failed"), ("u3", "action-required"), ("u2", "rejected")]
    assert [r.user_key for r in await recent_failures(storage, limit=2)] == ["u0", "u3"]
    assert found[0].reason == "failed because"  # the whole row, re-read


async def test_the_failure_index_stays_bounded(services: Services) -> None:
    """Past FAILURES_KEPT failures, pruning drops the oldest index rows; the newest stay listed."""
    storage = services.storage
    for i in range(30):
        await storage.put_status(row(f"u{i:02d}", "failed", at=T0 + timedelta(seconds=i)))
    assert await failure_index.prune_failures(storage, keep=10) == 20
    assert [r.user_key for r in await recent_failures(storage, limit=3)] == ["u29", "u28", "u27"]
    assert len(await recent_failures(storage, limit=50)) == 10


async def test_reconcile_rebuilds_the_failure_index(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure whose index write was lost is listed again after a reconcile."""

    async def lost(*args: object, **kwargs: object) -> None:
        raise ServiceRequestError("connection reset")

    monkeypatch.setattr(counters, "_index_failure", lost)
    await services.storage.put_status(row("u1", "blocked"))
    monkeypatch.undo()
    assert await recent_failures(services.storage, limit=5) == []
    await reconcile(services.storage)
    assert [r.user_key for r in await recent_failures(services.storage, limit=5)] == ["u1"]


async def test_history_has_one_point_per_day_with_outcomes_recorded_and_seats(services: Services) -> None:
    """Outcomes land on their UTC day, seats on their snapshot's day (the last call wins), zeros elsewhere."""
    storage = services.storage
    today = date(2026, 12, 1)
    await storage.put_status(row("u1", "assigned", at=datetime(2026, 11, 29, 23, 59, tzinfo=UTC)))
    await storage.put_status(row("u1", "verified", at=datetime(2026, 12, 1, 0, 1, tzinfo=UTC)))
    await storage.put_status(row("u2", "failed", at=datetime(2026, 12, 1, 8, tzinfo=UTC)))
    await record_seats(storage, day=today, seats={"EMS": 3, "ENTERPRISEPACK": 9})
    await record_seats(storage, day=today, seats={"EMS": 4})
    points = await history(storage, days=3, today=today)
    assert [p.day for p in points] == [date(2026, 11, 29), date(2026, 11, 30), today]
    assert [Counter(dict(p.outcomes)) for p in points] == [
        Counter(assigned=1),
        Counter(),
        Counter(verified=1, failed=1),
    ]
    assert [p.outcomes[0][0] for p in points] == ["assigned"] * 3  # every outcome listed, zeros kept
    assert [p.seats_used for p in points] == [(), (), (("EMS", 4),)]
