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
from licensing.adapters.graph.bulk import BATCH_LIMIT, SWEEP_SELECT, BulkReader, DeltaExpired, user_path
from licensing.adapters.graph.client import ForeignLink
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
from licensing.core.drift import DeviceTally, Drift, ResolvedPolicy, assess, device_limit, fix_for
from licensing.core.errors import AccessDenied, LicensingError
from licensing.core.model import UserFacts
from licensing.services.context import Services
from licensing.services.scheduling import PacedSender
from licensing.services.sweep_provisioning import check_provisioning

log = logging.getLogger(__name__)
Mode = Literal["report", "remediate"]
Progress = Callable[[int, int], None]  # (users seen, users drifted) so far


@dataclass
class SweepResult:
    """What one run saw and did (also the SweepRuns row)."""

    run_id: str
    mode: Mode
    read: Literal["full", "delta", "skipped"]
    started: datetime
    dry_run: bool = False  # a preview: the delta state is not moved and no SweepRuns row is written
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


async def run_sweep(
    services: Services,
    *,
    mode: Mode | None = None,
    force_full: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> SweepResult:
    """One sweep; a second one started while this runs returns at once with ``read == "skipped"``. ``dry_run`` (the
    CLI's --dry-run) reports only and keeps the deltaLink, last full read and SweepRuns as they were: the next real
    run still sees every change the preview saw. Its drift rows and report are written (the summary names it)."""
    settings = services.settings
    started = services.clock()
    mode = "report" if dry_run else mode or settings.sweep_mode
    result = SweepResult(uuid.uuid4().hex[:12], mode, "skipped", started, dry_run=dry_run)
    if not await acquire_lease(services.storage, run_id=result.run_id, now=started):
        log.warning("sweep %s skipped: another sweep holds the lease", result.run_id)
        return result
    try:
        await _sweep(services, result, force_full=force_full, progress=progress)
    finally:
        await release_lease(services.storage, run_id=result.run_id)
    return result


def _full_because(services: Services, link: str | None, last_full: datetime | None, started: datetime) -> str:
    """Why this run reads every user ("" : it follows the deltaLink)."""
    if link is None:
        return "no delta link stored"
    if last_full is None or started - last_full > timedelta(days=services.settings.sweep_full_every_days):
        return f"last full read over {services.settings.sweep_full_every_days} days ago"
    return ""


async def _sweep(services: Services, result: SweepResult, *, force_full: bool, progress: Progress | None) -> None:
    if not isinstance(services.graph, GraphGateway):
        raise TypeError("the sweep needs the real Graph gateway")
    reader = BulkReader(services.graph)
    resolved = ResolvedPolicy.build(services.policy(), await reader.catalog())
    writer = DriftWriter(services.storage, result.run_id)
    fixer = PacedSender(services.storage, per_minute=services.settings.sweep_fix_rate_per_minute)
    link, last_full = await read_delta_state(services.storage)
    result.read_reason = "forced" if force_full else _full_because(services, link, last_full, result.started)
    result.read = "full" if result.read_reason else "delta"
    devices: DeviceTally | None = None

    async def consume(users: Sequence[UserFacts]) -> None:
        for user in users:
            result.users_seen += 1
            drifts = assess(user, resolved)
            if devices is not None and (over := device_limit(user, devices.count(user.id), resolved)):
                drifts = (*drifts, over)
            if drifts:
                await _note(result, writer, fixer, user, drifts)
        if progress:
            progress(result.users_seen, result.users_drifted)

    next_link: str | None = link
    in_delta: set[str] = set()  # users a delta read already assessed, should it expire halfway
    if result.read == "delta":
        assert link is not None
        try:
            async for page in reader.delta(link):
                ids = [u["id"] for u in page if "@removed" not in u and u.get("id")]
                in_delta.update(ids)
                await consume(await _read_users(reader, ids, result))
            next_link = reader.delta_link or link
        except DeltaExpired as exc:
            # Graph forgot the link (tokens last about 7 days): the same run reads every user instead.
            result.read, result.read_reason = "full", exc.message.removeprefix("the users deltaLink has ")
            log.warning("sweep %s: %s; reading every user instead", result.run_id, exc.message)
        except ForeignLink as exc:  # a planted SweepRuns row gets no token and does not stop the nightly sweep
            result.read, result.read_reason = "full", "delta link refused: not below LICENSING_GRAPH_URL"
            result.note(f"{exc.message}; every user was read instead")
    if result.read == "full":
        # Both before the users: changes made during the read show up next time; devices are counted when a user's
        # licenses are assessed.
        next_link, devices = await asyncio.gather(
            _start_delta(reader, result), _count_devices(services, reader, result)
        )
        async for page in reader.users():
            await consume([user_from_json(u) for u in page if u.get("id") not in in_delta])
    for user, drifts in await check_provisioning(services, reader, resolved, note=result.note):
        await _note(result, writer, fixer, user, drifts, seen=False)
    await _finish(services, result, reader, writer, fixer, next_link=next_link)


async def _finish(
    services: Services,
    result: SweepResult,
    reader: BulkReader,
    writer: DriftWriter,
    fixer: PacedSender,
    *,
    next_link: str | None,
) -> None:
    """Write what is buffered and the report; then, unless a dry run, the delta state and the SweepRuns row."""
    await writer.close()
    await fixer.close()
    result.graph_requests = reader.requests
    result.csv = writer.report.getvalue()
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


async def _start_delta(reader: BulkReader, result: SweepResult) -> str | None:
    """A deltaLink for the next run; a full read does not depend on it (None: the next run reads fully again)."""
    try:
        return await reader.latest_delta_link()
    except LicensingError as exc:
        result.note(f"no delta link for the next run ({exc.message}): it reads every user again")
        return None


async def _count_devices(services: Services, reader: BulkReader, result: SweepResult) -> DeviceTally | None:
    """Managed devices per user when LICENSING_DEVICE_LIMIT_CHECK is on (full reads only: devices change without
    the user changing, so a delta read could not say who crossed the limit)."""
    if not services.settings.device_limit_check:
        return None
    tally = DeviceTally()
    try:
        await reader.devices_per_user(tally)
    except AccessDenied:
        result.note(
            "device-limit check skipped: Graph refused managedDevices (grant DeviceManagementManagedDevices.Read.All)"
        )
        return None
    except LicensingError as exc:
        result.note(f"device-limit check skipped: {exc.message}")
        return None
    result.devices = tally.devices
    return tally


async def _note(
    result: SweepResult,
    writer: DriftWriter,
    fixer: PacedSender,
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
        message = {
            "user": user.id,
            "source": "sweep",
            "requestId": f"sweep-{result.run_id}-{user.id}",
            "converge": True,
        }
        await fixer.send(message | ({"action": "remove"} if fix == "remove" else {}))
        result.fixes_enqueued = fixer.sent


async def _read_users(reader: BulkReader, ids: Sequence[str], result: SweepResult) -> list[UserFacts]:
    """Changed users' full state, 20 per $batch (delta does not carry licenseAssignmentStates)."""
    select = ",".join(SWEEP_SELECT)
    paths = [path for u in ids if (path := user_path(u))]
    if len(paths) < len(ids):
        result.note(f"{len(ids) - len(paths)} user id(s) in a delta page are not object ids: not read")
    chunks = [paths[i : i + BATCH_LIMIT] for i in range(0, len(paths), BATCH_LIMIT)]
    answers = await asyncio.gather(*(reader.batch([f"{p}?$select={select}" for p in c]) for c in chunks))
    return [user_from_json(body) for answer in answers for status, body in answer if status == 200 and body]
