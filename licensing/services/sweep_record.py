"""What a sweep run leaves behind: its result (the SweepRuns row), and how a run is closed, finished or failed."""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from licensing.adapters import telemetry
from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.graph.read_budget import ReadBudget
from licensing.adapters.storage.sweep_store import DriftWriter, record_run, save_delta_state, upload_report
from licensing.core.errors import LicensingError, TransientError
from licensing.services.context import Services
from licensing.services.scheduling import PacedSender

log = logging.getLogger(__name__)
Mode = Literal["report", "remediate"]


@dataclass
class SweepResult:
    """What one run saw and did (also the SweepRuns row)."""

    run_id: str
    mode: Mode
    read: Literal["full", "delta", "skipped"]
    started: datetime
    dry_run: bool = False  # a preview: the delta state is not moved and no SweepRuns row is written
    outcome: Literal["completed", "failed"] = "completed"
    failure: str = ""  # why a failed run stopped (its SweepRuns row says so; the delta state was not moved)
    ended: datetime | None = None
    read_reason: str = ""  # why a full read ("first run", "delta expired (410 resyncrequired)", ...)
    notes: list[str] = field(default_factory=list)  # what this run could not do, and what that means
    devices: int | None = None  # managed devices counted (None: not counted this run)
    users_seen: int = 0
    users_drifted: int = 0
    drift: Counter[str] = field(default_factory=Counter)
    fixes_enqueued: int = 0
    graph_requests: int = 0
    report: str = ""
    csv: str = ""

    def summary(self) -> dict[str, Any]:
        """The SweepRuns row / --json output."""
        return {
            "runId": self.run_id,
            "mode": self.mode,
            "dryRun": self.dry_run,
            "outcome": self.outcome,
            "failure": self.failure,
            "read": self.read,
            "readReason": self.read_reason,
            "notes": list(self.notes),
            "devicesCounted": self.devices,
            "started": self.started,
            "ended": self.ended,
            "usersSeen": self.users_seen,
            "usersDrifted": self.users_drifted,
            "drift": dict(sorted(self.drift.items())),
            "fixesEnqueued": self.fixes_enqueued,
            "graphRequests": self.graph_requests,
            "report": self.report,
        }

    def note(self, text: str) -> None:
        """Something the run could not do: in the summary and the log."""
        self.notes.append(text)
        log.warning("sweep %s: %s", self.run_id, text)


class SweepFailed(TransientError):
    """The run stopped before it finished; its SweepRuns row (unless a dry run) says why. The next run - tomorrow's
    timer, or `licensing sweep` now - starts from the same delta state."""

    def __init__(self, message: str, result: SweepResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class Run:
    """One run's parts: its result so far, the reader (and its budget), and where its findings go."""

    result: SweepResult
    reader: BulkReader
    budget: ReadBudget
    writer: DriftWriter
    fixer: PacedSender


async def finish(services: Services, run: Run, *, next_link: str | None) -> None:
    """Write what is buffered and the report; then, unless a dry run, the delta state and the SweepRuns row."""
    result = run.result
    if run.budget.waits:
        result.note(f"waited out Graph's Retry-After {run.budget.waits} time(s), the longest {run.budget.longest:g} s")
    await run.writer.close()
    await run.fixer.close()
    result.graph_requests = run.reader.requests
    result.csv = run.writer.report.getvalue()
    result.report = await upload_report(services.storage.blobs, result.run_id, result.csv)
    result.ended = services.clock()
    if not result.dry_run:
        full_at = result.started if result.read == "full" else None
        await save_delta_state(services.storage, delta_link=next_link, full_at=full_at)
        await record_run(services.storage, result.summary(), started=result.started)
    telemetry.swept(result.drift, read=result.read)
    why = f": {result.read_reason}" if result.read_reason else ""
    counts = (result.users_seen, result.users_drifted, result.fixes_enqueued, result.graph_requests)
    what = f"sweep {result.run_id} ({result.read} read{why}, {result.mode})"
    log.info("%s: %d users, %d drifted, %d fixes, %d Graph requests", what, *counts)


async def fail(services: Services, run: Run, exc: Exception) -> Exception:
    """A run that stopped: what it found so far is written and, unless a dry run, a SweepRuns row with ``outcome:
    failed`` and why; the delta state stays, so the next run reads the same changes. Returns what to raise:
    SweepFailed for an expected failure (Graph, storage, out of time), the exception itself for a bug."""
    result = run.result
    result.outcome, result.failure = "failed", _why(exc, run.budget)
    result.graph_requests, result.ended = run.reader.requests, services.clock()
    log.error("sweep %s failed: %s", result.run_id, result.failure)
    for closing in (run.writer.close, run.fixer.close):
        with suppress(Exception):  # already failing: the SweepRuns row matters more than these rows
            await closing()
    kept = "a dry run: nothing recorded"
    if not result.dry_run:
        kept = "recorded in SweepRuns; the delta state is kept"
        try:
            await record_run(services.storage, result.summary(), started=result.started)
        except LicensingError as also:  # storage is down too: the log and the exception are all that is left
            kept = f"not recorded: {also.message}"
    if not isinstance(exc, LicensingError | TimeoutError):
        return exc
    return SweepFailed(f"sweep {result.run_id} failed: {result.failure} ({kept})", result)


def _why(exc: Exception, budget: ReadBudget) -> str:
    if isinstance(exc, LicensingError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"out of time: not finished within {budget.run_seconds:g} s (the function timeout less a margin)"
    return f"unexpected {type(exc).__name__}: {exc}"
