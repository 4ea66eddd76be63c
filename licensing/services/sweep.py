"""The nightly sweep: stream every user (or only the changed ones), find drift, report it or queue fixes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from licensing.adapters import telemetry
from licensing.adapters.graph.bulk import BATCH_LIMIT, SWEEP_SELECT, BulkReader
from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.graph.reads import user_from_json
from licensing.adapters.storage.sweep_store import (
    DriftWriter,
    acquire_lease,
    read_delta_state,
    record_run,
    release_lease,
    save_delta_state,
    upload_report,
)
from licensing.core.drift import Drift, ResolvedPolicy, assess, fix_for
from licensing.core.model import UserFacts
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.services.context import Services
from licensing.services.sweep_provisioning import check_provisioning

log = logging.getLogger(__name__)
Mode = Literal["report", "remediate"]
Progress = Callable[[int, int], None]  # (users seen, users drifted) so far
SEND_CONCURRENCY = 32


@dataclass
class SweepResult:
    """What one run saw and did (also the SweepRuns row)."""

    run_id: str
    mode: Mode
    read: Literal["full", "delta", "skipped"]
    started: datetime
    ended: datetime | None = None
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
            "read": self.read,
            "started": self.started,
            "ended": self.ended,
            "usersSeen": self.users_seen,
            "usersDrifted": self.users_drifted,
            "drift": dict(sorted(self.drift.items())),
            "fixesEnqueued": self.fixes_enqueued,
            "graphRequests": self.graph_requests,
            "report": self.report,
        }


async def run_sweep(
    services: Services, *, mode: Mode | None = None, force_full: bool = False, progress: Progress | None = None
) -> SweepResult:
    """One sweep; a second one started while this runs returns at once with ``read == "skipped"``."""
    settings = services.settings
    started = services.clock()
    result = SweepResult(uuid.uuid4().hex[:12], mode or settings.sweep_mode, "skipped", started)
    if not await acquire_lease(services.storage, run_id=result.run_id, now=started):
        log.warning("sweep %s skipped: another sweep holds the lease", result.run_id)
        return result
    try:
        await _sweep(services, result, force_full=force_full, progress=progress)
    finally:
        await release_lease(services.storage, run_id=result.run_id)
    return result


async def _sweep(services: Services, result: SweepResult, *, force_full: bool, progress: Progress | None) -> None:
    if not isinstance(services.graph, GraphGateway):
        raise TypeError("the sweep needs the real Graph gateway")
    reader = BulkReader(services.graph)
    resolved = ResolvedPolicy.build(services.policy(), await reader.catalog())
    writer = DriftWriter(services.storage, result.run_id)
    fixer = _Fixer(services, result)
    link, last_full = await read_delta_state(services.storage)
    stale = last_full is None or result.started - last_full > timedelta(days=services.settings.sweep_full_every_days)
    result.read = "full" if force_full or link is None or stale else "delta"

    async def consume(users: Sequence[UserFacts]) -> None:
        for user in users:
            result.users_seen += 1
            drifts = assess(user, resolved)
            if drifts:
                await _note(result, writer, fixer, user, drifts)
        if progress:
            progress(result.users_seen, result.users_drifted)

    if result.read == "full":
        next_link = await reader.latest_delta_link()  # taken first: changes during the read show up next time
        async for page in reader.users():
            await consume([user_from_json(u) for u in page])
    else:
        assert link is not None
        async for page in reader.delta(link):
            ids = [u["id"] for u in page if "@removed" not in u and u.get("id")]
            await consume(await _read_users(reader, ids))
        next_link = reader.delta_link or link
    for user, drifts in await check_provisioning(services, reader, resolved):
        await _note(result, writer, fixer, user, drifts, seen=False)
    await writer.close()
    await fixer.close()
    result.graph_requests = reader.requests
    result.csv = writer.report.getvalue()
    result.report = await upload_report(services.storage.blobs, result.run_id, result.csv)
    result.ended = services.clock()
    await save_delta_state(
        services.storage, delta_link=next_link, full_at=result.started if result.read == "full" else None
    )
    await record_run(services.storage, result.summary(), started=result.started)
    telemetry.swept(result.drift, read=result.read)
    log.info(
        "sweep %s (%s, %s): %d users, %d drifted, %d fixes, %d Graph requests",
        result.run_id,
        result.read,
        result.mode,
        result.users_seen,
        result.users_drifted,
        result.fixes_enqueued,
        result.graph_requests,
    )


async def _note(
    result: SweepResult,
    writer: DriftWriter,
    fixer: _Fixer,
    user: UserFacts,
    drifts: tuple[Drift, ...],
    *,
    seen: bool = True,
) -> None:
    result.users_drifted += 1 if seen else 0
    result.drift.update(d.kind for d in drifts)
    fix = fix_for(drifts)
    await writer.add(user, drifts, fix, key_suffix="" if seen else "~provisioning")
    if fix and result.mode == "remediate":
        await fixer.enqueue(user, fix)


async def _read_users(reader: BulkReader, ids: Sequence[str]) -> list[UserFacts]:
    """Changed users' full state, 20 per $batch (delta does not carry licenseAssignmentStates)."""
    select = ",".join(SWEEP_SELECT)
    chunks = [ids[i : i + BATCH_LIMIT] for i in range(0, len(ids), BATCH_LIMIT)]
    answers = await asyncio.gather(*(reader.batch([f"/users/{u}?$select={select}" for u in c]) for c in chunks))
    return [user_from_json(body) for answer in answers for status, body in answer if status == 200 and body]


class _Fixer:
    """Queues fix requests, spaced out so the fixes stay under the Graph write budget."""

    def __init__(self, services: Services, result: SweepResult) -> None:
        self._services = services
        self._result = result
        self._per_second = max(services.settings.sweep_fix_rate_per_minute / 60, 0.01)
        self._gate = asyncio.Semaphore(SEND_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, user: UserFacts, fix: str) -> None:
        # Each fix is at most two writes (PATCH usageLocation + assignLicense); spacing them by the configured
        # rate keeps 429s rare instead of using them as the brake.
        delay = int(self._result.fixes_enqueued / self._per_second)
        self._result.fixes_enqueued += 1
        message: dict[str, Any] = {
            "user": user.id,
            "source": "sweep",
            "requestId": f"sweep-{self._result.run_id}-{user.id}",
            "converge": True,
        }
        if fix == "remove":
            message["action"] = "remove"
        await self._gate.acquire()
        task = asyncio.ensure_future(self._services.storage.send(LICENSE_REQUESTS_QUEUE, message, delay_seconds=delay))
        task.add_done_callback(lambda _: self._gate.release())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks)
