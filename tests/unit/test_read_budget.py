"""The sweep's budget for waiting out Graph's Retry-After: it fits inside the function timeout, and a wait that does
not fit is refused at once instead of slept."""

from __future__ import annotations

import json
from pathlib import Path

from licensing.adapters.graph.client import RETRY_WINDOW
from licensing.adapters.graph.read_budget import (
    CLOSING_MARGIN,
    FUNCTION_TIMEOUT,
    LAST_READ,
    RUN_SECONDS,
    WAIT_UNTIL,
    ReadBudget,
    retry_after,
)
from licensing.settings import GRAPH_RETRY_WAIT_CAP, LIMITS

ROOT = Path(__file__).resolve().parents[2]


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(time: FakeTime) -> ReadBudget:
    """The sweep's default budget on the fake clock."""
    return ReadBudget(clock=time.clock, sleep=time.sleep)


def test_the_budget_fits_inside_the_function_timeout() -> None:
    """Waits end by 170 s, leaving one read's worst case; the run is cut off 30 s before host.json's timeout."""
    host = json.loads((ROOT / "host.json").read_text())
    hours, minutes, seconds = (int(x) for x in host["functionTimeout"].split(":"))
    assert hours * 3600 + minutes * 60 + seconds == FUNCTION_TIMEOUT
    assert RUN_SECONDS + CLOSING_MARGIN == FUNCTION_TIMEOUT
    assert RETRY_WINDOW + GRAPH_RETRY_WAIT_CAP + LIMITS["LICENSING_GRAPH_TIMEOUT_SECONDS"] <= LAST_READ
    assert WAIT_UNTIL + LAST_READ == RUN_SECONDS
    assert WAIT_UNTIL > 0


async def test_a_wait_that_fits_is_slept_and_counted() -> None:
    """20 s and then 100 s fit in 170 s; the longest is kept for the run's note."""
    time = FakeTime()
    patient = budget(time)
    assert await patient.wait(20)
    assert await patient.wait(100)
    assert (time.slept, patient.waits, patient.longest) == ([20, 100], 2, 100)
    assert patient.left() == WAIT_UNTIL - 120


async def test_a_wait_past_what_is_left_is_refused_without_sleeping() -> None:
    """300 s never fits; after 150 s waited, 30 s no longer does either; the refusal says how much was left."""
    time = FakeTime()
    patient = budget(time)
    assert not await patient.wait(300)
    assert await patient.wait(150)
    assert not await patient.wait(30)
    assert time.slept == [150]
    assert patient.refusal(30) == "Retry-After 30 s, more than the 20 s left to wait"


async def test_without_a_budget_only_waits_up_to_the_cap_are_taken() -> None:
    """ReadBudget.none(): a $batch sub-request's Retry-After up to the cap is waited out, anything longer refused."""
    time = FakeTime()
    impatient = ReadBudget.none(sleep=time.sleep)
    assert await impatient.wait_out(GRAPH_RETRY_WAIT_CAP)
    assert not await impatient.wait_out(GRAPH_RETRY_WAIT_CAP + 1)
    assert time.slept == [GRAPH_RETRY_WAIT_CAP]


def test_retry_after_is_read_from_any_header_case() -> None:
    """Seconds from Retry-After whatever its case; missing or unreadable is 1 s, negative 0 s."""
    assert retry_after({"Retry-After": "20"}) == 20
    assert retry_after({"retry-after": 3.5}) == 3.5
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 1
    assert retry_after({"Retry-After": "-4"}) == 0
    assert retry_after(None) == 1
