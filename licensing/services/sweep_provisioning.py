"""The sweep's provisioning check: only users whose last status is assigned / pending / action-required / failed,
20 per $batch.

licenseDetails first; Graph refuses it to application permissions (https://learn.microsoft.com/graph/api/
user-list-licensedetails: Application "Not supported"), and then, for the rest of the run, each user's
assignedPlans joined with provisionedPlans (adapters.graph.fallback) - the first refused batch is read again that way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from licensing.adapters.graph.bulk import BATCH_LIMIT, BulkReader, user_path
from licensing.adapters.graph.fallback import observed_from_user_json
from licensing.adapters.graph.gateway import FALLBACK_SELECT
from licensing.adapters.graph.reads import observed_from_json
from licensing.core.drift import Drift, ResolvedPolicy
from licensing.core.model import ADMIN_STATUSES, SETTLING_STATUSES, ObservedLicense, UserFacts
from licensing.core.records import StatusRecord
from licensing.core.verification import ExpectedLicense, verify_license
from licensing.services.context import Services
from licensing.services.sweep_reads import statuses

log = logging.getLogger(__name__)
UNSETTLED = ("assigned", "pending", "action-required", "failed")
BATCHES_IN_FLIGHT = 4
DETAILS = "{}/licenseDetails?$select=skuId,skuPartNumber,servicePlans"  # {} is bulk.user_path's /users/...
PLANS = "{}?$select=" + ",".join(FALLBACK_SELECT)
SHOWN_KEYS = 3  # refused row keys quoted in the run's note; the rest are counted
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
        self.unread: Counter[int] = Counter()  # answers neither 200 nor 404 (throttled past every wait, 5xx), by status

    async def chunk(self, users: Mapping[str, str]) -> dict[str, tuple[ObservedLicense, ...]]:
        """Plan states of up to 20 users, by row key; ``users`` maps each row key to its bulk.user_path."""
        user_ids, paths = list(users), list(users.values())
        async with self.gate:
            if not self.app_only:
                answers = await self.reader.batch([DETAILS.format(p) for p in paths])
                if not any(status == 403 for status, _ in answers):
                    return {u: observed_from_json(b) for u, b in self._read(user_ids, answers).items()}
                if not self.app_only:
                    log.info("licenseDetails refused (403): reading assignedPlans + provisionedPlans instead")
                self.app_only = True
            answers = await self.reader.batch([PLANS.format(p) for p in paths])
            return {u: observed_from_user_json(b, self.catalog) for u, b in self._read(user_ids, answers).items()}

    def _read(self, user_ids: Sequence[str], answers: Sequence[tuple[int, Any]]) -> dict[str, dict[str, Any]]:
        """The 200 answers' bodies by row key; the others counted (404: the user is gone, nothing to check)."""
        found = {}
        for user_id, (status, body) in zip(user_ids, answers, strict=True):
            if status == 200 and isinstance(body, dict):
                found[user_id] = body
            elif status != 404:
                self.unread[status] += 1
        return found


async def check_provisioning(
    services: Services, reader: BulkReader, resolved: ResolvedPolicy, *, note: Callable[[str], None]
) -> list[tuple[UserFacts, tuple[Drift, ...]]]:
    """Users whose plans are in Error, wait for an admin, or still settle past the verification deadline.

    A row whose key is neither an object id nor a userPrincipalName is not read (``note`` says so): the key is put
    into a $batch URL, and a key like ``x/../../users?$filter=`` would otherwise become a different request.
    """
    rows: dict[str, dict[str, StatusRecord]] = {}
    for outcome in UNSETTLED:
        async for row in services.storage.statuses(outcome=outcome):
            if row.sku != "-":
                rows.setdefault(row.user_key, {})[row.sku] = row
    paths = {key: path for key in sorted(rows) if (path := user_path(key))}
    if refused := [key for key in sorted(rows) if key not in paths]:
        shown = ", ".join(repr(key[:60]) for key in refused[:SHOWN_KEYS])
        note(
            f"provisioning not checked for {len(refused)} LicenseStatus row key(s) that are neither an object id nor "
            f"a userPrincipalName ({shown}{', ...' if len(refused) > SHOWN_KEYS else ''}): fix or delete those rows"
        )
    keys = list(paths)
    chunks = [{k: paths[k] for k in keys[i : i + BATCH_LIMIT]} for i in range(0, len(keys), BATCH_LIMIT)]
    reads = _Reads(reader, resolved)
    # The first batch alone: if licenseDetails is refused, the others go straight to the app-only read.
    observed = [await reads.chunk(chunks[0])] if chunks else []
    observed += await asyncio.gather(*(reads.chunk(c) for c in chunks[1:]))
    if reads.unread:
        note(
            f"provisioning not checked for {reads.unread.total()} user(s) Graph did not answer "
            f"({statuses(reads.unread)}): their LicenseStatus rows stay as they are, so the next run checks them again"
        )
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
