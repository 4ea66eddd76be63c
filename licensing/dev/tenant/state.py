"""The emulated tenant: SKUs, users and their licenses, with Graph's rules for changing them. No HTTP."""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from licensing.dev.tenant.model import (
    Assignment,
    GraphError,
    ServicePlan,
    Sku,
    User,
    guid,
    new_id,
)
from licensing.dev.tenant.rules import (
    BAD_REQUEST,
    apply_license_change,
    check_license_change,
    require_parameters,
    user_changes,
)
from licensing.dev.tenant.seed import read_seed, sku_from_json, user_fields
from licensing.dev.tenant.subscriptions import Subscription

__all__ = ["Assignment", "GraphError", "ServicePlan", "Sku", "TenantState", "User"]

DEFAULT_TENANT_ID = "6a3f1c2e-8b4d-4e7a-9c15-2f0d8e6b7a91"
# Best first: which status a plan shows when several assignments of one SKU hold it.
_STATUS_RANK = ("Success", "PendingActivation", "PendingProvisioning", "PendingInput", "Error", "Disabled")


class TenantState:
    """One tenant's directory state plus the counters the emulator keeps about requests to it.

    ``clock`` (epoch seconds) decides provisioning: a newly enabled plan is ``PendingProvisioning``
    until ``provisioning_delay`` seconds have passed, then ``Success``. Both may be changed at runtime.
    The same clock expires change-notification subscriptions.
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        account_name: str = "Contoso",
        clock: Callable[[], float] = time.time,
        provisioning_delay: float = 30.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.account_name = account_name
        self.clock = clock
        self.provisioning_delay = provisioning_delay
        self.skus: dict[str, Sku] = {}
        self.users: dict[str, User] = {}  # by id; insertion order is listing order
        self.requests: Counter[str] = Counter()  # "GET /users/{id}" -> requests received
        self.faulted: Counter[str] = Counter()  # same keys, requests answered by an injected fault
        self.writes: Counter[str] = Counter()  # "assignLicense" / "updateUser" / "createUser" -> applied
        self.status_overrides: dict[tuple[str, str], str] = {}
        self.subscriptions: dict[str, Subscription] = {}  # change-notification subscriptions by id
        self.auto_notify = False  # notify subscribers (in the background) of users created or PATCHed

    @classmethod
    def from_fixture(
        cls,
        source: str | Path | Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        provisioning_delay: float = 30.0,
    ) -> TenantState:
        """A tenant seeded from a fixture file or a dict shaped like ``fixture.json``."""
        seed = read_seed(source)
        state = cls(
            tenant_id=guid(seed.get("tenantId", DEFAULT_TENANT_ID)),
            account_name=str(seed.get("accountName", "Contoso")),
            clock=clock,
            provisioning_delay=provisioning_delay,
        )
        for item in seed.get("subscribedSkus") or []:
            state.add_sku(sku_from_json(item))
        for item in seed.get("users") or []:
            state.add_user(**user_fields(item, state.skus, now=clock()))
        return state

    @classmethod
    def default(cls, *, clock: Callable[[], float] = time.time, provisioning_delay: float = 30.0) -> TenantState:
        """The shipped Contoso fixture (new hires, executives, EMS / EMS E5 / Intune SKUs)."""
        return cls.from_fixture(read_seed(None), clock=clock, provisioning_delay=provisioning_delay)

    # --- directory -------------------------------------------------------------------------------

    def add_sku(self, sku: Sku) -> Sku:
        """Subscribe the tenant to a SKU (replacing one with the same id)."""
        self.skus[sku.id] = sku
        return sku

    def add_user(
        self,
        user_principal_name: str,
        display_name: str,
        *,
        id: str | None = None,
        **attributes: Any,  # noqa: ANN401  # any further User field, as in the dataclass
    ) -> User:
        """Create a user; the id is a fresh GUID unless given. UPNs are unique, as in Entra ID."""
        if self.find_user(user_principal_name) is not None:
            raise GraphError(
                400, BAD_REQUEST, "Another object with the same value for property userPrincipalName already exists."
            )
        user = User(id=(id or new_id()).lower(), user_principal_name=user_principal_name, display_name=display_name)
        for name, value in attributes.items():
            setattr(user, name, value)
        self.users[user.id] = user
        return user

    def find_user(self, ref: str) -> User | None:
        """A user by object id or userPrincipalName, both case-insensitive."""
        wanted = ref.lower()
        found = self.users.get(wanted)
        return found or next((u for u in self.users.values() if u.user_principal_name.lower() == wanted), None)

    def user(self, ref: str) -> User:
        """A user by id or UPN, or Graph's 404 for one that does not exist."""
        found = self.find_user(ref)
        if found is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{ref}' does not exist or one of its queried reference-property objects are not present.",
            )
        return found

    def consumed_units(self, sku_id: str) -> int:
        """Users holding the SKU by any path: direct and group together take one seat."""
        wanted = sku_id.lower()
        return sum(1 for u in self.users.values() if u.holds(wanted))

    def free_units(self, sku_id: str) -> int:
        """``prepaidUnits.enabled - consumedUnits``, as a caller of GET /subscribedSkus computes it."""
        sku = self.skus.get(sku_id.lower())
        return (sku.enabled - self.consumed_units(sku.id)) if sku else 0

    # --- writes ----------------------------------------------------------------------------------

    def assign_license(
        self, user_ref: str, add: Sequence[Mapping[str, Any]] | None, remove: Sequence[str] | None
    ) -> User:
        """POST /users/{id}/assignLicense: validate everything first, then apply all or nothing.

        ``None`` for ``add`` or ``remove`` means the key was missing from the payload. Re-posting a SKU
        the user holds directly replaces its disabledPlans (``[]`` enables every plan); only a SKU new
        to the user takes a seat. Group-inherited licenses cannot be removed here.
        """
        adding, removing = require_parameters(add, remove)
        user = self.user(user_ref)
        change = check_license_change(user, self.skus, self.free_units, adding, removing)
        apply_license_change(user, change, self.clock())
        self.writes["assignLicense"] += 1
        return user

    def set_user(self, user_ref: str, patch: Mapping[str, Any]) -> User:
        """PATCH /users/{id}: usageLocation (ISO 3166 alpha-2), accountEnabled and the HR attributes."""
        user = self.user(user_ref)
        for name, value in user_changes(patch).items():
            setattr(user, name, value)
        self.writes["updateUser"] += 1
        return user

    def force_status(self, user_ref: str, plan_name: str, status: str | None) -> None:
        """Pin an enabled plan's provisioningStatus for a user (e.g. "Error", "PendingInput"); None unpins."""
        key = (self.user(user_ref).id, plan_name.upper())
        if status is None:
            self.status_overrides.pop(key, None)
        else:
            self.status_overrides[key] = status

    def reset_counters(self) -> None:
        """Forget request, fault and write counts."""
        self.requests.clear()
        self.faulted.clear()
        self.writes.clear()

    # --- reads -----------------------------------------------------------------------------------

    def plan_status(self, user: User, assignment: Assignment, plan: ServicePlan) -> str:
        """One plan's provisioningStatus on one assignment, as licenseDetails reports it."""
        if plan.id in assignment.disabled_plans:
            return "Disabled"
        forced = self.status_overrides.get((user.id, plan.name.upper()))
        if forced:
            return forced
        ready_at = assignment.enabled_since(plan.id) + self.provisioning_delay
        return "Success" if self.clock() >= ready_at else "PendingProvisioning"

    def merged_status(self, user: User, sku_id: str, plan: ServicePlan) -> str:
        """A plan's status across every assignment of the SKU (a direct and a group one may overlap)."""
        statuses = [self.plan_status(user, a, plan) for a in user.holds(sku_id)]
        return min(statuses, key=lambda s: _STATUS_RANK.index(s) if s in _STATUS_RANK else len(_STATUS_RANK))

    def assignment_state(self, user: User, assignment: Assignment) -> str:
        """licenseAssignmentStates[].state: Active, ActiveWithError (a plan in Error) or Error."""
        if assignment.error not in {"None", ""}:
            return "Error"
        sku = self.skus[assignment.sku_id]
        if any(self.plan_status(user, assignment, p) == "Error" for p in sku.plans):
            return "ActiveWithError"
        return "Active"

    def held_skus(self, user: User) -> list[Sku]:
        """The SKUs a user holds, each once, in the order first assigned."""
        return [self.skus[s] for s in dict.fromkeys(a.sku_id for a in user.assignments)]

    def license_details(self, user: User) -> list[dict[str, Any]]:
        """GET /users/{id}/licenseDetails items: one per SKU held, with each plan's provisioningStatus."""
        return [
            {
                "id": detail_id(self.tenant_id, sku.id),
                "skuId": sku.id,
                "skuPartNumber": sku.part_number,
                "servicePlans": [
                    {
                        "servicePlanId": p.id,
                        "servicePlanName": p.name,
                        "provisioningStatus": self.merged_status(user, sku.id, p),
                        "appliesTo": p.applies_to,
                    }
                    for p in sku.plans
                ],
            }
            for sku in self.held_skus(user)
        ]


def detail_id(tenant_id: str, sku_id: str) -> str:
    """licenseDetails ids as Graph builds them: base64url of the tenant and SKU GUIDs (little-endian)."""
    raw = uuid.UUID(tenant_id).bytes_le + uuid.UUID(sku_id).bytes_le
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
