"""Status counters kept at write time (Azurite): they follow the status table, survive concurrency, and reconcile."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.data.tables.aio import TableClient

from licensing.adapters.storage import counters, failure_index, rows
from licensing.adapters.storage.account import STATUS_TABLE, Storage
from licensing.adapters.storage.counters import (
    history,
    last_reconciled,
    outcome_totals,
    recent_failures,
    reconcile,
    record_seats,
)
from licensing.adapters.storage.rows import status_entity
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


async def index_entries(storage: Storage) -> list[tuple[str, str]]:
    """The failure index's entries, newest first, as (user, SKU)."""
    rows = storage.table(failure_index.INDEX_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": failure_index.FAILURES}
    )
    return [(row["User"], row["Sku"]) async for row in rows]


async def test_the_failure_index_holds_one_entry_per_row_failing_now(services: Services) -> None:
    """A fixed or deleted row leaves the index, a row failing again moves to the top: no entry is left behind."""
    storage = services.storage
    for i in range(4):
        await storage.put_status(row(f"u{i}", "failed", at=T0 + timedelta(seconds=i)))
    await storage.put_status(row("u0", "blocked", at=T0 + timedelta(minutes=1)))  # failing again, later
    await storage.put_status(row("u1", "verified", at=T0 + timedelta(minutes=1)))  # fixed
    await storage.delete_status("u2", "EMS")
    assert await index_entries(storage) == [("u0", "EMS"), ("u3", "EMS")]


async def test_failures_still_failing_stay_listed_after_newer_ones_are_fixed(services: Services) -> None:
    """210 rows fail, the newest 200 are fixed: the page lists the 10 rows still failing (the counters say 10)."""
    storage = services.storage
    for i in range(210):
        await storage.put_status(row(f"u{i:03d}", "failed", at=T0 + timedelta(seconds=i)))
    for i in range(10, 210):
        await storage.put_status(row(f"u{i:03d}", "verified", at=T0 + timedelta(minutes=10, seconds=i)))
    assert (await outcome_totals(storage))["failed"] == 10
    assert len(await recent_failures(storage, limit=25)) == 10
    assert len(await index_entries(storage)) == 10


async def test_one_row_failing_repeatedly_does_not_hide_the_other_failures(services: Services) -> None:
    """40 rows failing, then one of them failing again 200 times: the page still lists 25 distinct failures."""
    storage = services.storage
    for i in range(40):
        await storage.put_status(row(f"u{i}", "failed", at=T0 + timedelta(seconds=i)))
    for n in range(200):  # a row whose retries fail again and again
        await storage.put_status(row("u7", "failed", at=T0 + timedelta(minutes=5, seconds=n)))
    shown = await recent_failures(storage, limit=25)
    assert len({r.user_key for r in shown}) == 25
    assert shown[0].user_key == "u7"
    assert len(await index_entries(storage)) == 40


async def test_reconcile_replaces_the_failure_index_with_the_rows_failing_now(services: Services) -> None:
    """Entries lost or left behind (index writes that failed) are put right: the index holds the failing rows."""
    storage = services.storage
    for i in range(30):
        await storage.put_status(row(f"u{i:02d}", "failed", at=T0 + timedelta(seconds=i)))
    table = storage.table(failure_index.INDEX_TABLE)
    async for entry in table.query_entities("PartitionKey eq @pk", parameters={"pk": failure_index.FAILURES}):
        if entry["User"] >= "u10":
            await table.delete_entity(entry)  # lost: 20 failing rows missing from the index
    for i in range(5):  # left behind: fixed rows whose entries stayed
        await table.upsert_entity(rows.failure_index_row(failure_index.FAILURES, row(f"gone{i}", "failed")))
    await reconcile(storage)
    expected = [(f"u{i:02d}", "EMS") for i in range(29, -1, -1)]
    assert await index_entries(storage) == expected
    assert [r.user_key for r in await recent_failures(storage, limit=25)] == [user for user, _ in expected[:25]]


async def test_reconcile_keeps_a_failure_written_during_its_scan(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row failing while the recount scans (so the scan may miss it) keeps its index entry."""
    storage = services.storage
    await storage.put_status(row("u0", "failed"))
    scan = Storage.statuses

    async def scan_while_failing(self: Storage, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        async for status in scan(self, *args, **kwargs):  # type: ignore[arg-type]
            yield status
        late = row("late", "blocked", at=T0 + timedelta(minutes=1))  # another worker's write, after the scan
        await failure_index.failure_moved(storage, before=None, after=late)

    monkeypatch.setattr(Storage, "statuses", scan_while_failing)
    await reconcile(storage)
    monkeypatch.undo()
    assert await index_entries(storage) == [("late", "EMS"), ("u0", "EMS")]


async def test_reconcile_rebuilds_the_failure_index(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure whose index write was lost is listed again after a reconcile."""

    async def lost(*args: object, **kwargs: object) -> None:
        raise ServiceRequestError("connection reset")

    monkeypatch.setattr(counters, "failure_moved", lost)
    await services.storage.put_status(row("u1", "blocked"))
    monkeypatch.undo()
    assert await outcome_totals(services.storage) == only(blocked=1)  # the counters moved all the same
    assert await recent_failures(services.storage, limit=5) == []
    await reconcile(services.storage)
    assert [r.user_key for r in await recent_failures(services.storage, limit=5)] == ["u1"]


async def test_a_create_whose_response_was_lost_still_moves_the_counters(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create goes in, its response is lost and the SDK re-sends it (409): the new row is counted once."""
    storage = services.storage
    await storage.put_status(row("seed", "verified"))
    real = TableClient.create_entity
    resent: list[object] = []

    async def create_then_resend(self: TableClient, entity: dict[str, Any], **kwargs: Any) -> Any:
        result = await real(self, entity, **kwargs)
        if self.table_name == STATUS_TABLE and not resent:
            resent.append(entity["PartitionKey"])
            return await real(self, entity, **kwargs)  # the transport's re-send of a request that went in: 409
        return result

    monkeypatch.setattr(TableClient, "create_entity", create_then_resend)
    await storage.put_status(row("u1", "failed"))
    assert resent == ["u1"]
    assert await outcome_totals(storage) == only(verified=1, failed=1) == await scanned(storage)
    assert [r.user_key for r in await recent_failures(storage, limit=5)] == ["u1"]


async def test_an_update_whose_response_was_lost_still_moves_the_counters(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update goes in, its response is lost and the re-send fails on the ETag (412): counted from the old row."""
    storage = services.storage
    await storage.put_status(row("u1", "failed"))
    real = TableClient.update_entity
    resent: list[object] = []

    async def update_then_resend(self: TableClient, entity: dict[str, Any], **kwargs: Any) -> Any:
        result = await real(self, entity, **kwargs)
        if self.table_name == STATUS_TABLE and not resent:
            resent.append(entity["PartitionKey"])
            return await real(self, entity, **kwargs)  # the same ETag again: 412
        return result

    monkeypatch.setattr(TableClient, "update_entity", update_then_resend)
    await storage.put_status(row("u1", "verified", at=T0 + timedelta(minutes=1)))
    assert resent == ["u1"]
    assert await outcome_totals(storage) == only(verified=1) == await scanned(storage)
    assert await index_entries(storage) == []


async def test_rows_from_before_the_counters_are_counted_from_the_first_recount(services: Services) -> None:
    """Rows written before the counters existed leave the totals off (even negative) until a recount, which says
    when it ran."""
    storage = services.storage
    await storage.put_status(row("seed", "verified"))
    legacy = status_entity(row("legacy", "pending"))
    await storage.table(STATUS_TABLE).upsert_entity(legacy)  # a row written before the upgrade: never counted
    await storage.put_status(row("legacy", "verified", at=T0 + timedelta(minutes=1)))
    assert await outcome_totals(storage) == only(verified=2, pending=-1)
    assert await last_reconciled(storage) is None
    await reconcile(storage, at=T0 + timedelta(hours=1))
    assert await outcome_totals(storage) == only(verified=2) == await scanned(storage)
    assert await last_reconciled(storage) == T0 + timedelta(hours=1)


async def test_a_recount_that_gave_up_leaves_the_last_recount_time(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time of the last recount moves only when a recount replaced the totals."""
    storage = services.storage
    await reconcile(storage, at=T0)
    scan = Storage.statuses

    async def scan_while_writing(self: Storage, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        await storage.put_status(row(f"w{random.randrange(10**9)}", "pending"))  # another worker's write
        async for status in scan(self, *args, **kwargs):  # type: ignore[arg-type]
            yield status

    monkeypatch.setattr(Storage, "statuses", scan_while_writing)
    with pytest.raises(TransientError):
        await reconcile(storage, attempts=1, at=T0 + timedelta(days=1))
    assert await last_reconciled(storage) == T0


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
