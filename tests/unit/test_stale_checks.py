"""Which checks are stale, and what a requeue sends: pure rules over status rows."""

from __future__ import annotations

import json

import pytest

from licensing.core.records import Outcome, StatusRecord, requeue_message, stale_check


def row(outcome: Outcome, request_id: str = "r1", disabled: tuple[str, ...] = ("INTUNE_A",)) -> StatusRecord:
    """An EMS status row."""
    return StatusRecord("u", "EMS", "u@x", outcome, "why", request_id, "hr", disabled_plans=disabled)


@pytest.mark.parametrize(
    ("current", "left", "stale"),
    [
        (None, False, None),
        (row("assigned"), False, None),
        (row("pending"), False, None),
        (row("verified"), False, None),
        (row("failed", "r2"), False, None),  # a requeue re-checking a failed assignment of the same plans
        (row("action-required", "r2"), False, None),  # after an admin fixed it
        (row("blocked", "r2", ()), False, None),
        (row("removed"), False, "EMS was removed since (request r1)"),
        (None, True, "the user left (HR terminate) after it was sent"),
        (row("assigned", "r2"), False, "EMS was assigned since by request r2"),
        (row("verified", "r2"), False, "EMS was assigned since by request r2"),
        (row("assigned", "r1", ("INTUNE_A", "RMS_S_PREMIUM")), False, "other disabled plans (INTUNE_A, RMS_S_PREMIUM"),
        (row("failed", "r2", ()), False, "other disabled plans (none; request r2)"),
    ],
)
def test_a_check_is_stale_once_the_row_belongs_to_another_assignment(
    current: StatusRecord | None, left: bool, stale: str | None
) -> None:
    """Removed, left, another request's assignment or another disabled set: stale; otherwise the verdict counts."""
    reason = stale_check(current, left=left, request_id="r1", disabled=("INTUNE_A",))
    if stale is None:
        assert reason is None
    else:
        assert reason is not None
        assert stale in reason


def test_a_requeue_sends_the_kept_request_with_a_new_id_and_attempts_reset() -> None:
    """The kept request goes back whole; a second requeue does not stack suffixes."""
    kept = {
        "user": "a@x",
        "source": "hr",
        "requestId": "hr-7+unblock-1",
        "attempt": 3,
        "usageLocationWaits": 2,
        "attributes": {"department": "Executive"},
    }
    message = requeue_message(_with(kept), tag="requeue-9")
    assert message == {**kept, "requestId": "hr-7+requeue-9", "attempt": 0, "usageLocationWaits": 0}


@pytest.mark.parametrize("kept", ["", "{not json", json.dumps(["a"]), json.dumps({"user": "a@x"})])
def test_without_a_usable_kept_request_a_requeue_is_a_bare_manual_one(kept: str) -> None:
    """No request kept (or an unreadable one): the user alone, as a manual request."""
    message = requeue_message(_with(kept), tag="unblock-3")
    assert message == {"user": "u", "source": "manual", "requestId": "unblock-3"}


def _with(kept: object) -> StatusRecord:
    text = kept if isinstance(kept, str) else json.dumps(kept)
    return StatusRecord("u", "EMS", "u@x", "blocked", "full", "r1", "hr", request=text)
