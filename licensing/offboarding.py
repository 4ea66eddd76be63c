"""Remove the licenses this app manages: leavers, and a mover's old SKU. Group-based ones are never touched."""

from __future__ import annotations

import logging

from licensing.composition import Services
from licensing.errors import PermanentError, PolicyError
from licensing.messages import OnboardRequest
from licensing.model import Catalog, UserFacts
from licensing.planning import Removal, plan_removals
from licensing.recording import Handled, record

log = logging.getLogger(__name__)


async def offboard(request: OnboardRequest, user: UserFacts, services: Services) -> Handled:
    """A leaver: one assignLicense call removing every SKU the policy hands out, recorded before/after."""
    catalog = await services.graph.catalog()
    try:
        removals = plan_removals(user, services.policy(), catalog)
    except PolicyError as exc:
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="rejected", kind="RequestRejected",
            reason=exc.message, request_id=request.request_id, source=request.source,
        )  # fmt: skip
        return Handled("rejected", exc.message)
    grouped = [h for h in user.licenses if h.assigned_by_group]
    kept = f"; {len(grouped)} group-assigned license(s) left to their groups" if grouped else ""
    if not removals:
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="removed", kind="LicenseRemoved",
            reason=f"no license managed by this app to remove{kept}", request_id=request.request_id,
            source=request.source,
        )  # fmt: skip
        return Handled("removed", "nothing to remove")
    try:
        await services.graph.assign(user.id, [], [r.sku_id for r in removals])
    except PermanentError as exc:
        for removal in removals:
            await record(
                services, user_key=user.id, upn=user.user_principal_name, outcome="failed", kind="AssignmentFailed",
                reason=exc.message, request_id=request.request_id, source=request.source, sku=removal.part_number,
            )  # fmt: skip
        return Handled("failed", exc.message)
    await record_removals(request, user, removals, catalog, services, rule="", note=kept)
    await services.graph.catalog(fresh=True)  # seats just came back; let the next assignment see them
    parts = ", ".join(r.part_number for r in removals)
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
