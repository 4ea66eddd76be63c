"""The sweep's provisioning check: only users whose last status is assigned / pending / failed, via $batch."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from licensing.adapters.graph.bulk import BATCH_LIMIT, BulkReader
from licensing.adapters.graph.reads import observed_from_json
from licensing.core.drift import Drift, ResolvedPolicy
from licensing.core.model import ObservedLicense, UserFacts
from licensing.core.records import StatusRecord
from licensing.core.verification import ExpectedLicense, verify_license
from licensing.services.context import Services

UNSETTLED = ("assigned", "pending", "failed")
BATCHES_IN_FLIGHT = 4


async def check_provisioning(
    services: Services, reader: BulkReader, resolved: ResolvedPolicy
) -> list[tuple[UserFacts, tuple[Drift, ...]]]:
    """Users whose plans are in Error, or still pending past the verification deadline."""
    rows: dict[str, dict[str, StatusRecord]] = {}
    for outcome in UNSETTLED:
        async for row in services.storage.statuses(outcome=outcome):
            if row.sku != "-":
                rows.setdefault(row.user_key, {})[row.sku] = row
    user_ids = sorted(rows)
    gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def one(chunk: Sequence[str]) -> list[tuple[int, Any]]:
        async with gate:
            return await reader.batch(
                [f"/users/{u}/licenseDetails?$select=skuId,skuPartNumber,servicePlans" for u in chunk]
            )

    chunks = [user_ids[i : i + BATCH_LIMIT] for i in range(0, len(user_ids), BATCH_LIMIT)]
    answers = await asyncio.gather(*(one(c) for c in chunks))
    deadline = timedelta(minutes=services.settings.verify_deadline_minutes)
    found = []
    for chunk, answer in zip(chunks, answers, strict=True):
        for user_id, (status, body) in zip(chunk, answer, strict=True):
            if status != 200 or not isinstance(body, dict):
                continue
            drifts = _assess(rows[user_id], _observed(body), resolved, now=services.clock(), deadline=deadline)
            if drifts:
                upn = next(iter(rows[user_id].values())).user_principal_name
                found.append((UserFacts(user_id, upn, None, True), drifts))
    return found


def _observed(body: Mapping[str, Any]) -> dict[str, ObservedLicense]:
    return {o.sku_id: o for o in observed_from_json(body)}


def _assess(
    rows: Mapping[str, StatusRecord],
    observed: Mapping[str, ObservedLicense],
    resolved: ResolvedPolicy,
    *,
    now: datetime,
    deadline: timedelta,
) -> tuple[Drift, ...]:
    drifts = []
    for part, row in rows.items():
        sku = resolved.catalog.by_part_number(part)
        if sku is None:
            continue
        disabled = frozenset(p.id for name in row.disabled_plans if (p := sku.plan_named(name)) is not None)
        verdict = verify_license(ExpectedLicense(sku.id, part, disabled), observed.get(sku.id))
        if any(c.status == "Error" for c in verdict.checks):
            drifts.append(Drift("provisioning-error", part, verdict.reason, None))
        elif verdict.outcome == "pending" and now - row.updated_at > deadline:
            drifts.append(Drift("provisioning-stuck", part, f"pending since {row.updated_at:%Y-%m-%d %H:%M}", None))
    return tuple(drifts)
