"""How long one sweep may wait out Graph's Retry-After (part of the Graph adapter; bulk.BulkReader takes one).

Queue-triggered reads never wait out a Retry-After above GRAPH_RETRY_WAIT_CAP (client.py): they fail as transient and
the queue redelivers later. The sweep is a timer, and a failed timer run is not retried: one long Retry-After there
would lose the night. So the sweep's bulk reads wait it out themselves, within one budget per run that fits inside
the function timeout:

    0 s ─ reads and waits ─ WAIT_UNTIL (170 s) ─ the last read ─ RUN_SECONDS (270 s) ─ closing ─ 300 s (host.json)

- a wait is honoured only if it ends by WAIT_UNTIL, which leaves LAST_READ (100 s, one read's worst case in
  client.py) for the read it waits for;
- the whole run is cut off at RUN_SECONDS (services.sweep), leaving CLOSING_MARGIN to write what is buffered and
  the failed SweepRuns row before the host's functionTimeout ends the process without a trace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from licensing.settings import GRAPH_RETRY_WAIT_CAP

FUNCTION_TIMEOUT = 300.0  # host.json functionTimeout (tests/unit/test_read_budget.py reads it from there)
CLOSING_MARGIN = 30.0  # drift rows still buffered, the failed SweepRuns row, the lease: a few storage calls
RUN_SECONDS = FUNCTION_TIMEOUT - CLOSING_MARGIN
LAST_READ = 100.0  # client.py: RETRY_WINDOW 30 s + one capped wait 10 s + a last attempt of at most 60 s
WAIT_UNTIL = RUN_SECONDS - LAST_READ


@dataclass
class ReadBudget:
    """One run's time for waiting out throttling. ``clock`` and ``sleep`` are the test switch: a fake pair waits
    out a Retry-After of minutes in no time."""

    run_seconds: float = RUN_SECONDS
    reserve: float = LAST_READ  # the end of the run no wait may eat into
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    waits: int = 0
    longest: float = 0.0
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @classmethod
    def none(cls, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> ReadBudget:
        """No time beyond GRAPH_RETRY_WAIT_CAP (reads outside the sweep: the queue redelivers them later)."""
        return cls(run_seconds=0.0, reserve=0.0, sleep=sleep)

    def left(self) -> float:
        """Seconds a wait that starts now may still take."""
        return self.started + self.run_seconds - self.reserve - self.clock()

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` when it fits in what is left (True); otherwise return False at once."""
        if seconds > self.left():
            return False
        self.waits += 1
        self.longest = max(self.longest, seconds)
        await self.sleep(seconds)
        return True

    async def wait_out(self, seconds: float) -> bool:
        """A $batch sub-request's Retry-After (the SDK sees only the batch's 200): up to GRAPH_RETRY_WAIT_CAP always,
        as queue-triggered reads do; beyond it only within the budget."""
        if seconds <= GRAPH_RETRY_WAIT_CAP:
            await self.sleep(seconds)
            return True
        return await self.wait(seconds)

    def refusal(self, seconds: float) -> str:
        """Why a Retry-After of ``seconds`` is not waited out, for the error and the run's record."""
        return f"Retry-After {seconds:g} s, more than the {max(self.left(), 0.0):.0f} s left to wait"


def retry_after(headers: Mapping[str, Any] | None) -> float:
    """Graph's Retry-After in seconds (1 s when it is missing or not a number, as the SDK assumes)."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                return 1.0
    return 1.0
