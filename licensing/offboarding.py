"""Remove the licenses this app assigned: leavers, and a mover's old SKU. Group-based ones are never touched."""

from __future__ import annotations

import logging

from licensing.composition import Services
from licensing.errors import PermanentError
from licensing.messages import OnboardRequest
from licensing.model import Catalog, UserFacts
from licensing.planning import Removal, managed_sku_ids, plan_removals
from licensing.recording import Handled, record
from licensing.records import LEAVER as LEAVER  # noqa: PLC0414  # the explicit re-export mypy --strict needs
from licensing.records import StatusRecord
from licensing.seats import release_blocked

log = logging.getLogger(__name__)

OWNING = frozenset({"assigned", "verified", "pending", "failed"})  # status rows of SKUs this app assigned


async def owned_skus(
    request: OnboardRequest, user_id: str, catalog: Catalog, services: Services
) -> tuple[frozenset[str], dict[str, StatusRecord]]:
    """(ids of the SKUs the app may take away from the user, the user's status rows by RowKey).

    Normally the SKUs this app assigned; for a converging sweep fix, every SKU the policy names.
    """
    rows = {r.sku: r async for r in services.storage.statuses(user_id)}
    if request.converge:
        return managed_sku_ids(services.policy(), catalog), rows
    owned = frozenset(
        sku.id for part, row in rows.items() if row.outcome in OWNING and (sku := catalog.by_part_number(part))
    )
    return owned, rows


async def offboard(request: OnboardRequest, user: UserFacts, services: Services) -> Handled:
    """A leaver: one assignLicense call removing the SKUs this app assigned, recorded before/after.

    Leaves a tombstone so that a later notification or sweep does not license the leaver again.
    """
    catalog = await services.graph.catalog()
    owned, _ = await owned_skus(request, user.id, catalog, services)
    removals = plan_removals(user, owned, catalog)
    kept = [h for h in user.licenses if h.assigned_by_group or h.sku_id not in owned]
    note = (
        f"; {len(kept)} license(s) not assigned by this app (group-based or by hand) left as they are" if kept else ""
    )
    if removals:
        await services.budget.permit()
        try:
            await services.graph.assign(user.id, [], [r.sku_id for r in removals])
        except PermanentError as exc:
            for removal in removals:
                await record(
                    services, user_key=user.id, upn=user.user_principal_name, outcome="failed",
                    kind="AssignmentFailed", reason=exc.message, request_id=request.request_id,
                    source=request.source, sku=removal.part_number,
                )  # fmt: skip
            return Handled("failed", exc.message)
        await record_removals(request, user, removals, catalog, services, rule="", note=note)
        await services.graph.catalog(fresh=True)  # seats just came back; let the next assignment see them
        await release_blocked(services, {r.part_number: 1 for r in removals})
    if request.source == "hr":  # a termination; a sweep reclaiming a disabled account's seat is not one
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="removed", kind="LicenseRemoved",
            reason=f"leaver: not licensed again until a later HR hire{note}", request_id=request.request_id,
            source=request.source, sku=LEAVER,
        )  # fmt: skip
    parts = ", ".join(r.part_number for r in removals) or "nothing"
    log.info("removed %s from %s (request %s)", parts, user.id, request.request_id)
    return Handled("removed", f"{parts} removed from {user.user_principal_name}")


async def record_removals(
    request: OnboardRequest,
    user: UserFacts,
    removals: tuple[Removal, ...],
    catalog: Catalog,
    services: Services,
    *,
    rule: str,
    note: str = "",
) -> None:
    """A ``removed`` status row and a LicenseRemoved event (disabled plans before, nothing after) per SKU."""
    for removal in removals:
        sku = catalog.by_id(removal.sku_id)
        names = {p.id: p.name for p in sku.plans} if sku else {}
        before = tuple(sorted(names.get(p, p) for p in removal.disabled_before))
        why = "leaver" if request.action == "remove" else f"rule {rule!r} no longer gives it"
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="removed", kind="LicenseRemoved",
            reason=f"{removal.part_number} removed ({why}); its seat is free again{note}",
            request_id=request.request_id, source=request.source, sku=removal.part_number, rule=rule, before=before,
        )  # fmt: skip
