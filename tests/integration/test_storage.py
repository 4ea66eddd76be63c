"""The storage adapter against real Azurite: status rows, audit trail, base64 queue messages."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from licensing.adapters.storage import leases
from licensing.adapters.storage.rows import table_key
from licensing.core.records import AuditEvent, StatusRecord
from licensing.services.context import Services


async def test_status_row_round_trips_and_a_newer_write_replaces_it(services: Services) -> None:
    """The latest status per user+SKU: a newer write replaces the row, keeping history columns."""
    storage = services.storage
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pending = StatusRecord(
        "u1", "EMS", "ada@contoso.example", "assigned", "EMS assigned", "r1", "hr", rule="everyone",
        disabled_plans=("INTUNE_A",), plan_statuses={"INTUNE_A": "Disabled"}, attempts=1, updated_at=t0,
    )  # fmt: skip
    await storage.put_status(pending)
    later = t0 + timedelta(minutes=5)
    await storage.put_status(StatusRecord("u1", "EMS", "ada@contoso.example", "verified", "ok", "r1", "hr",
                                          updated_at=later))  # fmt: skip
    [back] = [r async for r in storage.statuses("u1")]
    assert (back.outcome, back.reason, back.sku, back.updated_at) == ("verified", "ok", "EMS", later)
    [entity] = [e async for e in storage.table("LicenseStatus").list_entities()]
    assert (entity["AssignedAt"], entity["VerifiedAt"]) == (t0, later)  # history kept by merging
    assert [r.user_key async for r in storage.statuses(outcome="verified")] == ["u1"]


async def test_a_late_writer_never_overwrites_a_newer_outcome(services: Services) -> None:
    """An older outcome arriving after a newer one (a slow worker) is dropped, even when written concurrently."""
    storage = services.storage
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    newest = StatusRecord("u9", "EMS", "x@y", "verified", "newest", "r", "hr", updated_at=t0 + timedelta(seconds=9))
    older = [StatusRecord("u9", "EMS", "x@y", "pending", f"older {i}", "r", "hr", updated_at=t0 + timedelta(seconds=i))
             for i in range(8)]  # fmt: skip
    await asyncio.gather(*(storage.put_status(r) for r in [*older, newest, *reversed(older)]))
    [row] = [r async for r in storage.statuses("u9")]
    assert (row.outcome, row.reason) == ("verified", "newest")


async def test_guest_upn_with_hash_is_a_valid_table_key(services: Services) -> None:
    """'#EXT#' guest UPNs are stored under an encoded key and read back unchanged."""
    upn = "ann_fabrikam.com#EXT#@contoso.onmicrosoft.com"
    assert "#" not in table_key(upn)
    await services.storage.put_status(StatusRecord(upn, "-", upn, "rejected", "why", "r", "manual"))
    [row] = [r async for r in services.storage.statuses(upn)]
    assert row.user_key == upn


async def test_audit_trail_is_newest_first_with_before_and_after(services: Services) -> None:
    """Events append; reading returns them newest first, keeping before/after disabled sets."""
    storage = services.storage
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await storage.append_event(AuditEvent("u2", "LicenseAssigned", "r1", "hr", "EMS", None, ("INTUNE_A",), at=start))
    await storage.append_event(
        AuditEvent("u2", "LicenseAssigned", "r2", "sweep", "EMS", ("INTUNE_A",), (), at=start + timedelta(hours=1))
    )
    newest, oldest = await storage.events("u2")
    assert (newest.request_id, newest.before, newest.after) == ("r2", ("INTUNE_A",), ())
    assert (oldest.request_id, oldest.before, oldest.after) == ("r1", None, ("INTUNE_A",))


async def test_last_error_finds_the_newest_failed_attempt_of_a_request(services: Services) -> None:
    """The poison handler's lookup: newest AttemptFailed for that request only."""
    storage = services.storage
    t = datetime(2026, 1, 1, tzinfo=UTC)
    await storage.append_event(AuditEvent("u3", "AttemptFailed", "r1", "hr", detail="delivery 1: a", at=t))
    await storage.append_event(
        AuditEvent("u3", "AttemptFailed", "r1", "hr", detail="delivery 2: b", at=t + timedelta(seconds=1))
    )
    await storage.append_event(
        AuditEvent("u3", "AttemptFailed", "r2", "hr", detail="other", at=t + timedelta(seconds=2))
    )
    found = await storage.last_error("u3", "r1")
    assert found is not None
    assert found.detail == "delivery 2: b"
    assert await storage.last_error("u3", "nope") is None


async def test_messages_are_base64_json_as_the_functions_host_expects(services: Services) -> None:
    """On the wire a message is base64 (host.json messageEncoding), and a delay hides it."""
    storage = services.storage
    await storage.send("license-requests", {"user": "a@b", "requestId": "r"})
    await storage.send("license-requests", {"user": "later"}, delay_seconds=3600)
    raw = storage._queues.get_queue_client("license-requests")  # no decode policy: the bytes on the wire
    messages = [m async for m in raw.receive_messages(messages_per_page=32)]
    assert len(messages) == 1
    assert json.loads(base64.b64decode(messages[0].content)) == {"user": "a@b", "requestId": "r"}
    assert (await raw.get_queue_properties()).approximate_message_count == 2


async def test_a_lease_renews_under_its_etag_and_a_taken_over_one_cannot(services: Services) -> None:
    """The holder renews while it holds the lease; once another worker took it (ours expired), renewing fails."""
    storage, now = services.storage, datetime.now(UTC)
    mine = await leases.take(storage, "u-lease", holder="a", now=now)
    assert mine is not None
    assert await leases.take(storage, "u-lease", holder="b", now=now) is None  # held: not expired yet
    await mine.renew(now + timedelta(seconds=100))  # extended to 100 s + LEASE
    assert await leases.take(storage, "u-lease", holder="b", now=now + leases.LEASE + timedelta(seconds=1)) is None
    theirs = await leases.take(storage, "u-lease", holder="b", now=now + leases.LEASE * 2)
    assert theirs is not None
    with pytest.raises(leases.LeaseLost):
        await mine.renew(now + leases.LEASE * 2)
    await mine.give_back()  # not ours any more: the other worker's lease stays
    row = await storage.table("UserLeases").get_entity("u-lease", "lease")
    assert row["Holder"] == "b"
    await theirs.give_back()
    assert await leases.take(storage, "u-lease", holder="c", now=now) is not None


async def test_the_hr_order_only_moves_forward(services: Services) -> None:
    """The latest applied HR event per user: an older one never replaces a newer one, even written concurrently."""
    storage, t0 = services.storage, datetime(2026, 1, 1, tzinfo=UTC)
    assert await leases.hr_order(storage, "u-hr") is None
    orders = [leases.HrOrder(t0 + timedelta(minutes=i), f"hr-{i}") for i in range(6)]
    await asyncio.gather(*(leases.advance_hr_order(storage, "u-hr", o) for o in [*orders, *reversed(orders)]))
    assert await leases.hr_order(storage, "u-hr") == orders[-1]
    await leases.advance_hr_order(storage, "u-hr", orders[0])
    assert await leases.hr_order(storage, "u-hr") == orders[-1]


async def test_a_blocked_rows_request_is_kept_and_dropped_once_the_row_moves_on(services: Services) -> None:
    """The Request column holds a blocked row's request; the next outcome (merged) clears it."""
    storage, t0 = services.storage, datetime(2026, 1, 1, tzinfo=UTC)
    kept = json.dumps({"user": "x@y", "source": "hr", "requestId": "hr-1", "attributes": {"department": "Executive"}})
    blocked = StatusRecord("u-b", "EMS", "x@y", "blocked", "full", "hr-1", "hr", updated_at=t0, request=kept)
    await storage.put_status(blocked)
    assert [r.request async for r in storage.statuses("u-b")] == [kept]
    later = t0 + timedelta(seconds=1)
    await storage.put_status(StatusRecord("u-b", "EMS", "x@y", "assigned", "ok", "hr-1", "hr", updated_at=later))
    assert [r.request async for r in storage.statuses("u-b")] == [""]
