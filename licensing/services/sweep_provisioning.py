"""The sweep's provisioning check: only users whose last status is assigned / pending / action-required / failed,
20 per $batch.

licenseDetails first; Graph refuses it to application permissions (https://learn.microsoft.com/graph/api/
user-list-licensedetails: Application "Not supported"), and then, for the rest of the run, each user's
assignedPlans joined with provisionedPlans (adapters.graph.fallback) - the first refused batch is read again that way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from licensing.adapters.graph.bulk import BATCH_LIMIT, BulkReader
from licensing.adapters.graph.fallback import observed_from_user_json
from licensing.adapters.graph.gateway import FALLBACK_SELECT
from licensing.adapters.graph.reads import observed_from_json
from licensing.core.drift import Drift, ResolvedPolicy
from licensing.core.model import ADMIN_STATUSES, SETTLING_STATUSES, ObservedLicense, UserFacts
from licensing.core.records import StatusRecord
from licensing.core.verification import ExpectedLicense, verify_license
from licensing.services.context import Services

log = logging.getLogger(__name__)
UNSETTLED = ("assigned", "pending", "action-required", "failed")
BATCHES_IN_FLIGHT = 4
DETAILS = "/users/{}/licenseDetails?$select=skuId,skuPartNumber,servicePlans"
PLANS = "/users/{}?$select=" + ",".join(FALLBACK_SELECT)
# What an admin does about a plan that waits for them (https://learn.microsoft.com/graph/api/resources/serviceplaninfo).
ADMIN_FIX = {
    "PendingActivation": "an admin must activate the service (Microsoft 365 admin center, the service's setup)",
    "PendingProvisioning": "a plan Microsoft added to the SKU: activate it for the tenant, or disable it in the policy",
}


class _Reads:
    """Plan states per user: licenseDetails until Graph refuses it, then assignedPlans + provisionedPlans."""

    def __init__(self, reader: BulkReader, resolved: ResolvedPolicy) -> None:
        self.reader = reader
        self.catalog = resolved.catalog
        self.app_only = False
        self.gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def chunk(self, user_ids: Sequence[str]) -> dict[str, tuple[ObservedLicense, ...]]:
        async with self.gate:
            if not self.app_only:
                answers = await self.reader.batch([DETAILS.format(u) for u in user_ids])
                if not any(status == 403 for status, _ in answers):
                    return {u: observed_from_json(b) for u, (s, b) in zip(user_ids, answers, strict=True) if _ok(s, b)}
                if not self.app_only:
                    log.info("licenseDetails refused (403): reading assignedPlans + provisionedPlans instead")
                self.app_only = True
            answers = await self.reader.batch([PLANS.format(u) for u in user_ids])
            return {
                u: observed_from_user_json(b, self.catalog)
                for u, (s, b) in zip(user_ids, answers, strict=True)
                if _ok(s, b)
            }


async def check_provisioning(
    services: Services, reader: BulkReader, resolved: ResolvedPolicy
) -> list[tuple[UserFacts, tuple[Drift, ...]]]:
    """Users whose plans are in Error, wait for an admin, or still settle past the verification deadline."""
    rows: dict[str, dict[str, StatusRecord]] = {}
    for outcome in UNSETTLED:
        async for row in services.storage.statuses(outcome=outcome):
            if row.sku != "-":
                rows.setdefault(row.user_key, {})[row.sku] = row
    user_ids = sorted(rows)
    chunks = [user_ids[i : i + BATCH_LIMIT] for i in range(0, len(user_ids), BATCH_LIMIT)]
    reads = _Reads(reader, resolved)
    # The first batch alone: if licenseDetails is refused, the others go straight to the app-only read.
    observed = [await reads.chunk(chunks[0])] if chunks else []
    observed += await asyncio.gather(*(reads.chunk(c) for c in chunks[1:]))
    deadline = timedelta(minutes=services.settings.verify_deadline_minutes)
    found = []
    for answer in observed:
        for user_id, licenses in answer.items():
            by_sku = {o.sku_id: o for o in licenses}
            drifts = assess_provisioning(rows[user_id], by_sku, resolved, now=services.clock(), deadline=deadline)
            if drifts:
                upn = next(iter(rows[user_id].values())).user_principal_name
                found.append((UserFacts(user_id, upn, None, True), drifts))
    return found


def _ok(status: int, body: Any) -> bool:  # noqa: ANN401  # a $batch answer's JSON body
    return status == 200 and isinstance(body, dict)


def assess_provisioning(
    rows: Mapping[str, StatusRecord],
    observed: Mapping[str, ObservedLicense],
    resolved: ResolvedPolicy,
    *,
    now: datetime,
    deadline: timedelta,
) -> tuple[Drift, ...]:
    """Per SKU: provisioning-error (a plan in Error); needs-admin (a plan waits for an admin: reported with the fix,
    never counted as stuck); provisioning-stuck (a plan still settling past the deadline). Pure."""
    drifts = []
    for part, row in rows.items():
        sku = resolved.catalog.by_part_number(part)
        if sku is None:
            continue
        disabled = frozenset(p.id for name in row.disabled_plans if (p := sku.plan_named(name)) is not None)
        verdict = verify_license(ExpectedLicense(sku.id, part, disabled), observed.get(sku.id))
        waiting = [c for c in verdict.checks if c.verdict != "verified"]
        admin = [c for c in waiting if c.status in ADMIN_STATUSES]
        if any(c.status == "Error" for c in waiting):
            drifts.append(Drift("provisioning-error", part, verdict.reason, None))
        elif admin:
            detail = "; ".join(f"{c.name} is {c.status}: {ADMIN_FIX[c.status]}" for c in admin)
            drifts.append(Drift("needs-admin", part, detail, None))
        elif any(c.status in SETTLING_STATUSES for c in waiting) and now - row.updated_at > deadline:
            drifts.append(Drift("provisioning-stuck", part, f"pending since {row.updated_at:%Y-%m-%d %H:%M}", None))
    return tuple(drifts)
