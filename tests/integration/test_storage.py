"""The storage adapter against real Azurite: status rows, audit trail, base64 queue messages."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

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
