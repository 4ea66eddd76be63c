"""The facts a license decision is made on: the user as Graph has them, the tenant catalog, our status rows,
the user's HR order, and the lease under which the decision is applied."""

from __future__ import annotations

from dataclasses import dataclass

from licensing.adapters.storage.leases import HrOrder, Lease, hr_order
from licensing.core.messages import OnboardRequest
from licensing.core.model import Catalog, UserFacts
from licensing.core.planning import managed_sku_ids
from licensing.core.records import StatusRecord
from licensing.services.context import Services

# status rows of SKUs this app assigned (action-required: assigned, a plan waits for an admin)
OWNING = frozenset({"assigned", "verified", "pending", "action-required", "failed"})


@dataclass(frozen=True, slots=True)
class UserState:
    """One user's licensing facts: ``owned`` are the SKU ids the app may take away, ``rows`` our rows by RowKey,
    ``hr`` the latest HR event applied; ``lease`` is renewed before each Graph write (it fences a stalled worker)."""

    user: UserFacts
    catalog: Catalog
    rows: dict[str, StatusRecord]
    owned: frozenset[str]
    lease: Lease
    hr: HrOrder | None = None

    async def fence(self, services: Services) -> None:
        """Renew the lease right before a write; LeaseLost (nothing written) if another worker took it."""
        await self.lease.renew(services.clock())


async def load_state(request: OnboardRequest, user: UserFacts, services: Services, lease: Lease) -> UserState:
    """Read the catalog, the user's status rows and HR order; what the app owns is normally the SKUs it assigned.

    A converging sweep fix owns every SKU the policy names (it removes what the rule no longer gives).
    """
    catalog = await services.graph.catalog()
    rows = {r.sku: r async for r in services.storage.statuses(user.id)}
    hr = await hr_order(services.storage, user.id) if request.source == "hr" else None
    if request.converge:
        return UserState(user, catalog, rows, managed_sku_ids(services.policy(), catalog), lease, hr)
    owned = frozenset(
        sku.id for part, row in rows.items() if row.outcome in OWNING and (sku := catalog.by_part_number(part))
    )
    return UserState(user, catalog, rows, owned, lease, hr)
