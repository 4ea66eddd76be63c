"""Remove the licenses this app assigned from a leaver. Group-based ones are never touched."""

from __future__ import annotations

import logging

from licensing.core.errors import PermanentError
from licensing.core.messages import OnboardRequest
from licensing.core.outcomes import Decided, license_removed
from licensing.core.planning import plan_removals
from licensing.core.records import LEAVER
from licensing.services.context import Services
from licensing.services.facts import UserState
from licensing.services.recording import Handled, about, record
from licensing.services.seats import release_blocked

log = logging.getLogger(__name__)


async def offboard(request: OnboardRequest, state: UserState, services: Services) -> Handled:
    """A leaver: one assignLicense call removing the SKUs this app assigned, recorded before/after.

    Leaves a tombstone so that a later notification or sweep does not license the leaver again.
    """
    user, owned, catalog = state.user, state.owned, state.catalog
    subject = about(request, user)
    removals = plan_removals(user, owned, catalog)
    kept = [h for h in user.licenses if h.assigned_by_group or h.sku_id not in owned]
    note = (
        f"; {len(kept)} license(s) not assigned by this app (group-based or by hand) left as they are" if kept else ""
    )
    if removals:
        await services.budget.permit()
        await state.fence(services)  # still ours after the budget's wait, or stop before writing
        try:
            await services.graph.assign(user.id, [], [r.sku_id for r in removals])
        except PermanentError as exc:
            for removal in removals:
                await record(
                    services, Decided(subject, "failed", "AssignmentFailed", exc.message, sku=removal.part_number)
                )
            return Handled("failed", exc.message)
        await state.fence(services)  # lost while the write was in flight: the new holder records, we come back
        for removal in removals:
            await record(services, license_removed(subject, removal, catalog, why="leaver", note=note))
        await services.graph.catalog(fresh=True)  # seats just came back; let the next assignment see them
        await release_blocked(services, {r.part_number: 1 for r in removals})
    if request.source == "hr":  # a termination; a sweep reclaiming a disabled account's seat is not one
        reason = f"leaver: not licensed again until a later HR hire{note}"
        # Dated when HR issued the terminate, not when it ran: a rehire HR issued after it passes the tombstone
        # even when the removal ran later (the terminate waited for its end date, or the queue was slow).
        tomb = Decided(subject, "removed", "LicenseRemoved", reason, sku=LEAVER, at=request.issued_at)
        await record(services, tomb)
    parts = ", ".join(r.part_number for r in removals) or "nothing"
    log.info("removed %s from %s (request %s)", parts, user.id, request.request_id)
    return Handled("removed", f"{parts} removed from {user.user_principal_name}")
