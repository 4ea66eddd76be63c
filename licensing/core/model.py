"""Plain data shared by the pure core and the adapters: no I/O, no SDK types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

PENDING_STATUSES = frozenset({"PendingInput", "PendingActivation", "PendingProvisioning"})
# https://learn.microsoft.com/graph/api/resources/serviceplaninfo: PendingInput = waiting for the service (settles
# by itself, re-check); PendingActivation = an admin must activate the service; PendingProvisioning = a plan
# Microsoft added to the SKU that the tenant has not activated. Only the first is worth waiting for.
SETTLING_STATUSES = frozenset({"PendingInput"})
ADMIN_STATUSES = frozenset({"PendingActivation", "PendingProvisioning"})
# Where plan states were read: licenseDetails (provisioningStatus per plan, delegated callers) or, app-only,
# assignedPlans joined with provisionedPlans on the workload ("service").
PlanSource = Literal["licenseDetails", "assignedPlans+provisionedPlans"]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One service plan of a SKU, as the tenant catalog lists it."""

    id: str
    name: str
    applies_to: str = "User"


@dataclass(frozen=True, slots=True)
class Sku:
    """A subscribed SKU with its plans and seat counts (from GET /subscribedSkus)."""

    id: str
    part_number: str
    plans: tuple[ServicePlan, ...]
    enabled: int
    consumed: int
    suspended: int = 0
    applies_to: str = "User"
    warning: int = 0  # prepaidUnits.warning: seats of a subscription in its grace period, still assignable

    @property
    def free(self) -> int:
        """Seats that can still be assigned: enabled plus grace-period (warning) seats, less those consumed.

        https://learn.microsoft.com/graph/api/resources/licenseunitsdetail: warning units are in a grace period
        after the subscription expired and can still be assigned.
        """
        return max(self.enabled + self.warning - self.consumed, 0)

    def low(self, threshold: int) -> bool:
        """Fewer than ``threshold`` seats free (LICENSING_LOW_SEAT_THRESHOLD): the CLI, page and warning agree."""
        return self.free < threshold

    def plan_named(self, name: str) -> ServicePlan | None:
        """The plan with this service plan name (case-insensitive), if the SKU has it."""
        wanted = name.casefold()
        return next((p for p in self.plans if p.name.casefold() == wanted), None)


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every SKU the tenant subscribes to."""

    skus: tuple[Sku, ...]

    def by_part_number(self, part_number: str) -> Sku | None:
        """The SKU with this part number (case-insensitive), if the tenant has it."""
        wanted = part_number.casefold()
        return next((s for s in self.skus if s.part_number.casefold() == wanted), None)

    def by_id(self, sku_id: str) -> Sku | None:
        """The SKU with this id, if the tenant has it."""
        wanted = sku_id.lower()
        return next((s for s in self.skus if s.id.lower() == wanted), None)


# licenseAssignmentStates[].state values in which the assignment does not (fully) license the user.
# https://learn.microsoft.com/graph/api/resources/licenseassignmentstate
FAILED_ASSIGNMENT_STATES = frozenset({"error", "activewitherror"})


@dataclass(frozen=True, slots=True)
class HeldLicense:
    """A license assignment on the user: direct when ``assigned_by_group`` is None.

    ``state``/``error`` are licenseAssignmentStates' (Active, ActiveWithError, Disabled, Error; CountViolation,
    MutuallyExclusiveViolation, ...); assignedLicenses alone carries neither, so they default to a healthy one.
    """

    sku_id: str
    disabled_plans: frozenset[str]
    assigned_by_group: str | None = None
    state: str = "Active"
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Graph could not apply this assignment (state Error or ActiveWithError): it does not license the user."""
        return self.state.casefold() in FAILED_ASSIGNMENT_STATES


@dataclass(frozen=True, slots=True)
class UserFacts:
    """What planning needs to know about a user."""

    id: str
    user_principal_name: str
    usage_location: str | None
    account_enabled: bool
    attributes: Mapping[str, str] = field(default_factory=dict)
    licenses: tuple[HeldLicense, ...] = ()

    def direct(self, sku_id: str) -> HeldLicense | None:
        """The user's direct assignment of this SKU, if any."""
        return next(
            (h for h in self.licenses if h.sku_id.lower() == sku_id.lower() and h.assigned_by_group is None),
            None,
        )

    def via_group(self, sku_id: str) -> HeldLicense | None:
        """A working group-based assignment of this SKU, if any (one in error licenses nobody)."""
        return next(
            (h for h in self.licenses if h.sku_id.lower() == sku_id.lower() and h.assigned_by_group and not h.failed),
            None,
        )

    def group_failure(self, sku_id: str) -> HeldLicense | None:
        """A group-based assignment of this SKU that Graph holds in error, if any."""
        return next(
            (h for h in self.licenses if h.sku_id.lower() == sku_id.lower() and h.assigned_by_group and h.failed),
            None,
        )


@dataclass(frozen=True, slots=True)
class PlanState:
    """One service plan's observed provisioning status (licenseDetails' provisioningStatus)."""

    plan_id: str
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class ObservedLicense:
    """One SKU on the user with the provisioning status of each of its plans."""

    sku_id: str
    part_number: str
    plans: tuple[PlanState, ...]
    source: PlanSource = "licenseDetails"
