"""The nightly sweep: stream every user (or only the changed ones), find drift, report it or queue fixes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.graph.read_budget import ReadBudget
from licensing.adapters.graph.reads import user_from_json
from licensing.adapters.storage.sweep_store import DriftWriter, acquire_lease, read_delta_state, release_lease
from licensing.core.drift import DeviceTally, Drift, ResolvedPolicy, assess, device_limit, fix_for
from licensing.core.model import UserFacts
from licensing.services.context import Services
from licensing.services.forecast import warn_scheduled_hires
from licensing.services.scheduling import PacedSender
from licensing.services.sweep_provisioning import check_provisioning
from licensing.services.sweep_reads import count_devices, follow_delta, start_delta
from licensing.services.sweep_record import Mode, Run, SweepFailed, SweepResult, fail, finish

__all__ = ["SweepFailed", "SweepResult", "run_sweep"]
log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (users seen, users drifted) so far


async def run_sweep(
    services: Services,
    *,
    mode: Mode | None = None,
    force_full: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    budget: ReadBudget | None = None,
) -> SweepResult:
    """One sweep; a second one started while this runs returns at once with ``read == "skipped"``. ``dry_run`` (the
    CLI's --dry-run) reports only and keeps the deltaLink, last full read and SweepRuns as they were: the next real
    run still sees every change the preview saw. Its drift rows and report are written (the summary names it).

    A timer run that fails is not run again, so a run never ends without a trace: reads wait out Graph's Retry-After
    within ``budget`` (default: what fits in host.json's functionTimeout, see read_budget), the run is cut off at its
    ``run_seconds``, and any failure writes a SweepRuns row with ``outcome: failed`` and the reason, keeps the delta
    state, and raises SweepFailed."""
    if not isinstance(services.graph, GraphGateway):
        raise TypeError("the sweep needs the real Graph gateway")
    started = services.clock()
    mode = "report" if dry_run else mode or services.settings.sweep_mode
    result = SweepResult(uuid.uuid4().hex[:12], mode, "skipped", started, dry_run=dry_run)
    if not await acquire_lease(services.storage, run_id=result.run_id, now=started):
        log.warning("sweep %s skipped: another sweep holds the lease", result.run_id)
        return result
    budget = budget or ReadBudget()
    writer = DriftWriter(services.storage, result.run_id)
    fixer = PacedSender(services.storage, per_minute=services.settings.sweep_fix_rate_per_minute)
    run = Run(result, BulkReader(services.graph, budget=budget), budget, writer, fixer)
    try:
        async with asyncio.timeout(budget.run_seconds):  # before the host's functionTimeout ends it without a trace
            next_link = await _sweep(services, run, force_full=force_full, progress=progress)
            await finish(services, run, next_link=next_link)
    except Exception as exc:
        failure = await fail(services, run, exc)
        if failure is exc:
            raise
        raise failure from exc
    finally:
        await release_lease(services.storage, run_id=result.run_id)
    await warn_scheduled_hires(services, within=30)  # nightly: hires scheduled since, and seats bought or freed
    return result


def _full_because(services: Services, link: str | None, last_full: datetime | None, started: datetime) -> str:
    """Why this run reads every user ("" : it follows the deltaLink)."""
    if link is None:
        return "no delta link stored"
    if last_full is None or started - last_full > timedelta(days=services.settings.sweep_full_every_days):
        return f"last full read over {services.settings.sweep_full_every_days} days ago"
    return ""


async def _sweep(services: Services, run: Run, *, force_full: bool, progress: Progress | None) -> str | None:
    """Read, assess and note drift; returns the deltaLink the next run follows (None: it reads every user)."""
    result, reader = run.result, run.reader
    resolved = ResolvedPolicy.build(services.policy(), await reader.catalog())
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
                await _note(run, user, drifts)
        if progress:
            progress(result.users_seen, result.users_drifted)

    next_link: str | None = link
    in_delta: set[str] = set()  # users a delta read assessed (or found gone), should it expire halfway
    if result.read == "delta":
        assert link is not None
        delta = await follow_delta(reader, link, consume, note=result.note)
        next_link, in_delta = delta.next_link, delta.settled
        if delta.fallback:  # Graph forgot the link (tokens last about 7 days), or it was refused
            result.read, result.read_reason = "full", delta.fallback
            log.warning("sweep %s: delta link %s; reading every user instead", result.run_id, delta.fallback)
    if result.read == "full":
        # Both before the users: changes made during the read show up next time; devices are counted when a user's
        # licenses are assessed.
        enabled = services.settings.device_limit_check
        next_link, devices = await asyncio.gather(
            start_delta(reader, note=result.note), count_devices(reader, enabled=enabled, note=result.note)
        )
        result.devices = devices.devices if devices is not None else None
        async for page in reader.users():
            await consume([user_from_json(u) for u in page if u.get("id") not in in_delta])
    for user, drifts in await check_provisioning(services, reader, resolved, note=result.note):
        await _note(run, user, drifts, seen=False)
    return next_link


async def _note(run: Run, user: UserFacts, drifts: tuple[Drift, ...], *, seen: bool = True) -> None:
    result, writer, fixer = run.result, run.writer, run.fixer
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
