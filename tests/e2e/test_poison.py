"""The poison handlers record every message the queue gave up on, even one that cannot be read at all."""

from __future__ import annotations

import pytest

from licensing.core.records import UNIDENTIFIED
from licensing.services.context import Services
from tests.helpers import invoke

HOSTILE = {
    "nested 100,000 deep": '{"user": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 5,000-digit number": '{"user": "x@contoso.com", "attempt": ' + "9" * 5000 + "}",
    "not JSON": "\x00\xff not json at all",
}


@pytest.mark.parametrize("function", ["onboard_poison", "verify_poison"])
@pytest.mark.parametrize("what", sorted(HOSTILE))
async def test_a_message_that_cannot_be_read_is_recorded_as_unreadable(
    services: Services, function: str, what: str
) -> None:
    """json.loads gives up (RecursionError, ValueError): the handler still records who (nobody), what and why."""
    await invoke(function, HOSTILE[what])
    rows = [r async for r in services.storage.statuses(UNIDENTIFIED)]
    assert len(rows) == 1
    [row] = rows
    assert (row.outcome, row.sku.startswith("message-")) == ("failed", True)
    assert "gave up after the queue's maximum deliveries" in row.reason
    assert "message " in row.reason
