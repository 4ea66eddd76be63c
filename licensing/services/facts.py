"""The facts a license decision is made on: the user as Graph has them, the tenant catalog, our status rows,
the user's HR order, and the lease under which the decision is applied."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from licensing.adapters.storage.leases import HrOrder, Lease, hr_order
from licensing.core.messages import OnboardRequest
from licensing.core.model import Catalog, UserFacts
from licensing.core.planning import AssignmentPlan, managed_sku_ids
from licensing.core.records import StatusRecord
from licensing.services.context import Services

# status rows of SKUs this app assigned (action-required: assigned, a plan waits for an admin)
OWNING = frozenset({"assigned", "verified", "pending", "action-required", "failed"})
# How long an AssignmentRequested event (the intent written before the Graph write) still makes the SKU the app's when
# no status row says so: long enough for every redelivery of that request, short enough that an admin's later
# hand-made assignment of the same SKU is not taken for ours.
INTENT_WINDOW = timedelta(hours=1)
# a managed SKU whose verification is done or under way: no second check chain
CHECKED_OR_CHECKING = frozenset({"verified", "pending", "assigned"})


@dataclass(frozen=True, slots=True)
class UserState:
    """One user's licensing facts: ``owned`` are the SKU ids the app may take away, ``rows`` our rows by RowKey,
    ``hr`` the latest HR event applied (``hired``: the latest HR hire, read for a terminate); ``lease`` is renewed
    before each Graph write (it fences a stalled worker)."""

    user: UserFacts
    catalog: Catalog
    rows: dict[str, StatusRecord]
    owned: frozenset[str]
    lease: Lease
    hr: HrOrder | None = None
    hired: HrOrder | None = None

    async def fence(self, services: Services) -> None:
        """Renew the lease right before a write; LeaseLost (nothing written) if another worker took it."""
        await self.lease.renew(services.clock())


def hire_key(user_id: str) -> str:
    """The key of the user's hire order: the issuedAt of the latest HR hire applied, an HR order of its own beside
    the user's (which every HR event advances), so that a terminate can ask "was I re-hired since?" alone."""
    return f"{user_id}~hire"


def owned_skus(rows: dict[str, StatusRecord], catalog: Catalog) -> frozenset[str]:
    """Ids of the SKUs whose rows say this app assigned them: the ones it may take away again."""
    return frozenset(
        sku.id for part, row in rows.items() if row.outcome in OWNING and (sku := catalog.by_part_number(part))
    )


def unverified(rows: dict[str, StatusRecord], plan: AssignmentPlan) -> bool:
    """True unless every managed SKU already has a verification done or under way (no second chain)."""
    return any((row := rows.get(d.part_number)) is None or row.outcome not in CHECKED_OR_CHECKING for d in plan.managed)


async def load_state(request: OnboardRequest, user: UserFacts, services: Services, lease: Lease) -> UserState:
    """Read the catalog, the user's status rows and HR order; what the app owns is normally the SKUs it assigned.

    A converging sweep fix owns every SKU the policy names (it removes what the rule no longer gives).
    """
    catalog = await services.graph.catalog()
    rows = {r.sku: r async for r in services.storage.statuses(user.id)}
    hr = await hr_order(services.storage, user.id) if request.source == "hr" else None
    hired = await hr_order(services.storage, hire_key(user.id)) if request.hr_event == "terminate" else None
    if request.converge:
        owned = managed_sku_ids(services.policy(), catalog)
    else:
        owned = owned_skus(rows, catalog)
        owned |= await _requested_lately(user, owned, catalog, services)
    return UserState(user, catalog, rows, owned, lease, hr, hired)


async def _requested_lately(
    user: UserFacts, owned: frozenset[str], catalog: Catalog, services: Services
) -> frozenset[str]:
    """Direct licenses the user holds that this app asked Graph for lately but has no row of: the write went in and
    recording it failed (storage between two writes), so the redelivery has not written the row yet. They are the
    app's all the same: a mover's request arriving in between must still remove them. Read only when the user holds
    a direct license no row accounts for (a new hire costs no query)."""
    unaccounted = {h.sku_id.lower() for h in user.licenses if h.assigned_by_group is None} - owned
    if not unaccounted:
        return frozenset()
    since = services.clock() - INTENT_WINDOW
    requested = await services.storage.recent_events(user.id, "AssignmentRequested", since=since)
    ids = {sku.id.lower() for e in requested if (sku := catalog.by_part_number(e.sku))}
    return frozenset(ids & unaccounted)
