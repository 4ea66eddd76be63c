"""The emulated tenant: SKUs, users and their licenses, with Graph's rules for changing them. No HTTP.

Besides the directory it keeps what a large tenant needs to stay fast and what delta queries read:
users in an append-only listing order (pages cost O(page), not O(users)), a UPN index, seat counts kept
up to date by every write, and a change log - one global sequence number, and per user the sequence
of its last change (create, PATCH, assignLicense, delete).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from licensing.dev.tenant.devices import DeviceStore
from licensing.dev.tenant.directory import Directory
from licensing.dev.tenant.model import Assignment, Device, GraphError, ServicePlan, Sku, User, guid, new_id
from licensing.dev.tenant.provisioning import Provisioning, detail_id
from licensing.dev.tenant.rules import (
    BAD_REQUEST,
    INVALID_USAGE_LOCATION,
    apply_license_change,
    check_exclusive_plans,
    check_license_change,
    require_parameters,
    user_changes,
)
from licensing.dev.tenant.seed import read_seed, sku_from_json, user_fields
from licensing.dev.tenant.strict import Strictness
from licensing.dev.tenant.subscriptions import Subscription

__all__ = ["Assignment", "GraphError", "ServicePlan", "Sku", "TenantState", "User", "detail_id"]

log = logging.getLogger(__name__)

DEFAULT_TENANT_ID = "6a3f1c2e-8b4d-4e7a-9c15-2f0d8e6b7a91"
DELTA_PAGE_SIZE = 200  # users per /users/delta page: what Graph sends (it ignores $top there)
DELTA_TOKEN_LIFETIME = 7 * 86400.0  # seconds: Graph expires directory delta tokens after seven days
# Up to this many users seats are counted afresh on every read, so tests may edit ``user.assignments`` by
# hand; above it the running counts kept by the tenant's own writes are used.
SEAT_SCAN_LIMIT = 5000
GROUP_LICENSE_STATES = ("Error", "ActiveWithError")
GROUP_LICENSE_ERRORS = (
    "CountViolation",
    "MutuallyExclusiveViolation",
    "DependencyViolation",
    "ProhibitedInUsageLocationViolation",
    "UniquenessViolation",
    "Other",
)
# Called with (user id, change type) when the tenant itself notifies subscribers (Webhooks registers it).
Notifier = Callable[[str, str], None]


class TenantState(Provisioning):
    """One tenant's directory state plus the counters the emulator keeps about requests to it.

    ``clock`` (epoch seconds) decides provisioning: a newly enabled plan shows
    ``strictness.settling_status`` until ``provisioning_delay`` seconds have passed, then ``Success``.
    Both may be changed at runtime. The same clock expires change-notification subscriptions.
    ``strictness`` (see strict.py) says how closely Graph's documentation is followed; mutable too.
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        account_name: str = "Contoso",
        clock: Callable[[], float] = time.time,
        provisioning_delay: float = 30.0,
        strictness: Strictness | None = None,
    ) -> None:
        self.strictness = strictness if strictness is not None else Strictness.by_default()
        self.tenant_id = tenant_id
        self.account_name = account_name
        self.clock = clock
        self.provisioning_delay = provisioning_delay
        self.skus: dict[str, Sku] = {}
        self.users: dict[str, User] = Directory(self._directory_changed)  # by id; see Directory for the order
        self.deleted_users: dict[str, User] = {}  # soft-deleted by delete_user (Entra's deleted items)
        self.sequence = 0  # bumped by every change to a user
        self.changes: dict[str, int] = {}  # user id -> sequence of its last change, oldest change first
        self.delta_page_size = DELTA_PAGE_SIZE
        self.delta_token_lifetime = DELTA_TOKEN_LIFETIME
        self.delta_epoch = new_id()[:8]  # in every delta token: a token from another tenant is refused
        self.expected: dict[str, list[str]] = {}  # drift kind -> user ids, for a generated tenant
        self._seats: Counter[str] | None = None  # users holding each SKU, once counted
        self._pinned: tuple[int, frozenset[str]] = (0, frozenset())  # see _pinned_users
        self.requests: Counter[str] = Counter()  # "GET /users/{id}" -> requests received
        self.faulted: Counter[str] = Counter()  # same keys, requests answered by an injected fault
        self.writes: Counter[str] = Counter()  # "assignLicense" / "updateUser" / "createUser" -> applied
        self.throttled_writes = 0  # identity writes refused by the write budget (see admit_write)
        self.write_log: deque[float] = deque()  # clock() of each admitted identity write, oldest first
        self.slow_answers = 0  # HTTP requests whose answer Faults.slow_ms held back
        self.status_overrides: dict[tuple[str, str], str] = {}
        self.subscriptions: dict[str, Subscription] = {}  # change-notification subscriptions by id
        self.auto_notify = False  # notify subscribers (in the background) of users created or PATCHed
        self.notifier: Notifier | None = None  # set by Webhooks: how the tenant notifies subscribers
        self.activation_required: set[str] = set()  # see Provisioning.require_activation
        self.plans_added: set[str] = set()  # see Provisioning.add_plan_to_sku
        self.usage_location_set: dict[str, float] = {}  # user id -> clock() of its last usageLocation change
        self.managed_devices = DeviceStore()

    @classmethod
    def from_fixture(
        cls,
        source: str | Path | Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        provisioning_delay: float = 30.0,
        strictness: Strictness | None = None,
    ) -> TenantState:
        """A tenant seeded from a fixture file or a dict shaped like ``fixture.json``."""
        seed = read_seed(source)
        state = cls(
            tenant_id=guid(seed.get("tenantId", DEFAULT_TENANT_ID)),
            account_name=str(seed.get("accountName", "Contoso")),
            clock=clock,
            provisioning_delay=provisioning_delay,
            strictness=strictness,
        )
        for item in seed.get("subscribedSkus") or []:
            state.add_sku(sku_from_json(item))
        for item in seed.get("users") or []:
            state.add_user(**user_fields(item, state.skus, now=clock()))
        return state

    @classmethod
    def default(
        cls,
        *,
        clock: Callable[[], float] = time.time,
        provisioning_delay: float = 30.0,
        strictness: Strictness | None = None,
    ) -> TenantState:
        """The shipped Contoso fixture (new hires, executives, EMS / EMS E5 / Intune SKUs)."""
        return cls.from_fixture(
            read_seed(None), clock=clock, provisioning_delay=provisioning_delay, strictness=strictness
        )

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

    def load_users(self, users: Sequence[User]) -> None:
        """Add many new users at once, unchecked (for generated tenants): ids must be lower-case and new,
        UPNs unique. Each counts as created for delta queries; seats are recounted on the next read."""
        self._directory.load(users)
        self._seats = None
        for user in users:
            self.sequence += 1
            self.changes[user.id] = self.sequence

    def find_user(self, ref: str) -> User | None:
        """A user by object id or userPrincipalName, both case-insensitive."""
        wanted = ref.lower()
        found = self.users.get(wanted)
        if found is None:
            user_id = self._directory.by_upn.get(wanted)
            found = self.users.get(user_id) if user_id is not None else None
        return found

    def user(self, ref: str) -> User:
        """A user by id or UPN, or Graph's 404 for one that does not exist."""
        found = self.find_user(ref)
        if found is None:
            raise _not_found(ref)
        return found

    def deleted_user(self, user_id: str) -> User:
        """A soft-deleted user by object id (Entra's deleted items), or Graph's 404 (for a live user too)."""
        found = self.deleted_users.get(user_id.lower())
        if found is None:
            raise _not_found(user_id)
        return found

    def consumed_units(self, sku_id: str) -> int:
        """Users holding the SKU by any path: direct and group together take one seat."""
        wanted = sku_id.lower()
        if len(self.users) <= SEAT_SCAN_LIMIT:
            return sum(1 for u in self.users.values() if u.holds(wanted))
        if self._seats is None:
            self._seats = Counter(s for u in self.users.values() for s in _held(u))
        return self._seats[wanted]

    def free_units(self, sku_id: str) -> int:
        """Seats left: ``prepaidUnits.enabled + warning - consumedUnits`` - warning units are in their grace
        period and still assignable (https://learn.microsoft.com/graph/api/resources/licenseunitsdetail);
        the lenient profile leaves warning units out."""
        sku = self.skus.get(sku_id.lower())
        if sku is None:
            return 0
        warning = sku.warning if self.strictness.warning_units_assignable else 0
        return sku.enabled + warning - self.consumed_units(sku.id)

    def users_holding_plan(self, plan_name: str) -> list[User]:
        """Users holding (by any path) a SKU that has this plan."""
        wanted = plan_name.upper()
        skus = {s.id for s in self.skus.values() if any(p.name.upper() == wanted for p in s.plans)}
        return [u for u in self.users.values() if any(a.sku_id in skus for a in u.assignments)]

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
        if adding and self._usage_location_replicating(user):
            raise GraphError(400, BAD_REQUEST, INVALID_USAGE_LOCATION)
        change = check_license_change(user, self.skus, self.free_units, adding, removing)
        check_exclusive_plans(user, self.skus, change, self.strictness.mutually_exclusive)
        before, held = _licenses(user), _held(user)
        apply_license_change(user, change, self.clock())
        self._recount(held, _held(user))
        if _licenses(user) != before:
            self.record_change(user.id)
        self.writes["assignLicense"] += 1
        return user

    def set_user(self, user_ref: str, patch: Mapping[str, Any]) -> User:
        """PATCH /users/{id}: usageLocation (ISO 3166 alpha-2), accountEnabled and the HR attributes."""
        user = self.user(user_ref)
        changed = False
        for name, value in user_changes(patch).items():
            if name == "usage_location" and value != user.usage_location:
                self.usage_location_set[user.id] = self.clock()
            changed = changed or getattr(user, name) != value
            setattr(user, name, value)
        if changed:
            self.record_change(user.id)
        self.writes["updateUser"] += 1
        return user

    def delete_user(self, user_ref: str, *, permanent: bool = False) -> User:
        """Delete a user (DELETE /users/{id}): gone from /users (GET answers 404), its seats freed.

        A soft delete keeps it in deleted_users: delta queries report ``{"id": ..., "@removed": {"reason":
        "changed"}}`` (restorable). ``permanent`` (also for a user already soft-deleted) forgets it: reason
        ``deleted``. Subscribers hear of it as Graph tells them (https://learn.microsoft.com/graph/api/
        resources/change-notifications-api-overview, users): with ``strictness.soft_delete`` always, a soft
        delete as ``updated`` and a permanent one as ``deleted``; in the lenient profile only with
        ``auto_notify``, as ``deleted``.
        """
        found = self.find_user(user_ref)
        if found is None and permanent:
            found = self.deleted_users.get(user_ref.lower())
        user = found if found is not None else self.user(user_ref)
        if user.id in self.users:
            del self.users[user.id]
        if permanent:
            if self.deleted_users.pop(user.id, None) is not None:
                self.record_change(user.id)  # the soft-deleted user is now gone for good
        else:
            self.deleted_users[user.id] = user
        self.writes["deleteUser"] += 1
        strict = self.strictness.soft_delete
        if strict or self.auto_notify:
            self.notify(user.id, "updated" if strict and not permanent else "deleted")
        return user

    def add_group_license(
        self,
        user_ref: str,
        part_number: str,
        group_id: str,
        *,
        disabled_plans: Iterable[str] = (),
        state: str = "Error",
        error: str = "CountViolation",
    ) -> Assignment:
        """A license the user inherits from a group, in error (https://learn.microsoft.com/graph/api/resources/
        licenseassignmentstate): ``Error`` is listed in licenseAssignmentStates only - not in assignedLicenses
        or assignedPlans, no seat; ``ActiveWithError`` is assigned (and takes a seat) with the error shown.
        ``disabled_plans`` are plan names or ids of the SKU."""
        if state not in GROUP_LICENSE_STATES or error not in GROUP_LICENSE_ERRORS:
            raise ValueError(f"state must be one of {GROUP_LICENSE_STATES}, error one of {GROUP_LICENSE_ERRORS}")
        user = self.user(user_ref)
        sku = next((s for s in self.skus.values() if s.part_number.lower() == part_number.lower()), None)
        if sku is None:
            raise ValueError(f"the tenant has no SKU {part_number!r}")
        disabled = [_plan_id(sku, ref) for ref in disabled_plans]
        now = self.clock()
        assignment = Assignment(sku.id, disabled, guid(group_id), now, updated_at=now, error=error, state=state)
        if state == "Error":
            user.failed_assignments.append(assignment)
        else:
            held = _held(user)
            user.assignments.append(assignment)
            self._recount(held, _held(user))
        self.record_change(user.id)
        return assignment

    def add_devices(self, user_ref: str, count: int) -> list[Device]:
        """Enrol ``count`` Intune managed devices for a user (GET /deviceManagement/managedDevices lists them)."""
        return self.managed_devices.add(self.user(user_ref), count, self.clock())

    def notify(self, user_id: str, change_type: str) -> None:
        """Tell subscribers (through the registered notifier, in the background) that a user changed."""
        if self.notifier is None:
            log.debug("no notifier registered: %s of user %s not notified", change_type, user_id)
            return
        self.notifier(user_id, change_type)

    def record_change(self, user_id: str) -> int:
        """Log a change to a user for delta queries; the new sequence number.

        The tenant's own writes call this; call it after changing a User's fields by hand.
        """
        self.sequence += 1
        self.changes.pop(user_id, None)  # re-inserted last: the dict stays ordered by sequence
        self.changes[user_id] = self.sequence
        return self.sequence

    def changed_after(self, after: int, upto: int) -> list[tuple[int, str]]:
        """``(sequence, user id)`` of users last changed in ``(after, upto]``, oldest first.

        Reads the log from its newest end, so the cost is the number of changes after ``after``.
        """
        found: list[tuple[int, str]] = []
        for user_id in reversed(self.changes):
            seq = self.changes[user_id]
            if seq <= after:
                break
            if seq <= upto:
                found.append((seq, user_id))
        found.reverse()
        return found

    def expire_delta_tokens(self) -> None:
        """Invalidate every delta and skip token handed out so far: their next use is 410 Gone with
        resyncRequired, or 400 syncStateNotFound (``strictness.delta_expired``)."""
        self.delta_epoch = new_id()[:8]

    def page_of_users(
        self, start: int, size: int, keep: Callable[[User], bool] | None = None
    ) -> tuple[list[User], int | None]:
        """Up to ``size`` users (matching ``keep``) from position ``start`` of the listing order, and the
        position the next page starts at (None when no user after them matches).

        Costs the positions scanned: O(size) without a filter, however many users the tenant has.
        """
        order, users = self._directory.order, self.users
        page: list[User] = []
        position = start
        while position < len(order):
            user = users.get(order[position])
            if user is not None and (keep is None or keep(user)):
                if len(page) == size:
                    return page, position
                page.append(user)
            position += 1
        return page, None

    def admit_write(self, budget: int, window: float) -> int | None:
        """Count one identity write against ``budget`` writes per sliding ``window`` seconds (0 = unlimited).

        None when admitted (logged, whatever the handler then makes of it; not logged while unlimited, so
        a budget set later starts from an empty window); otherwise the write is refused, not logged, and
        the answer is Graph's Retry-After: whole seconds until the window has room again - until its
        oldest write expires while the budget is unchanged - at least 1.
        """
        if budget <= 0:
            return None
        now = self.clock()
        log = self.write_log
        while log and log[0] <= now - window:
            log.popleft()
        if len(log) < budget:
            log.append(now)
            return None
        self.throttled_writes += 1
        frees_at = log[len(log) - budget] + window  # the write whose expiry leaves budget - 1 in the window
        return max(1, math.ceil(frees_at - now))

    def reset_counters(self) -> None:
        """Forget request, fault and write counts (not the write budget's window: see ``write_log``)."""
        self.requests.clear()
        self.faulted.clear()
        self.writes.clear()
        self.throttled_writes = 0
        self.slow_answers = 0

    # --- bookkeeping -----------------------------------------------------------------------------

    def _usage_location_replicating(self, user: User) -> bool:
        """True while a just-PATCHed usageLocation has not reached the licensing service
        (``strictness.usage_location_lag`` seconds; https://learn.microsoft.com/graph/api/user-assignlicense)."""
        set_at = self.usage_location_set.get(user.id)
        return set_at is not None and self.clock() - set_at < self.strictness.usage_location_lag

    @property
    def _directory(self) -> Directory:
        users = self.users
        assert isinstance(users, Directory), "TenantState.users must stay the Directory it was created with"
        return users

    def _directory_changed(self, user_id: str, old: User | None, new: User | None) -> None:
        """A user added, replaced or removed through ``users``: log it and move seats."""
        if new is not None and self.deleted_users:
            self.deleted_users.pop(user_id, None)  # re-created or restored
        if self._seats is not None:
            self._recount(_held(old) if old else frozenset(), _held(new) if new else frozenset())
        self.record_change(user_id)

    def _recount(self, before: frozenset[str], after: frozenset[str]) -> None:
        if self._seats is not None:
            self._seats.update(after - before)
            self._seats.subtract(before - after)


def _not_found(ref: str) -> GraphError:
    message = f"Resource '{ref}' does not exist or one of its queried reference-property objects are not present."
    return GraphError(404, "Request_ResourceNotFound", message)


def _held(user: User) -> frozenset[str]:
    """The SKU ids a user holds by any path."""
    return frozenset(a.sku_id for a in user.assignments)


def _licenses(user: User) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """What a user holds, as comparable tuples: (SKU, group, disabled plans) per assignment."""
    return [(a.sku_id, a.assigned_by_group, tuple(a.disabled_plans)) for a in user.assignments]


def _plan_id(sku: Sku, ref: str) -> str:
    """A plan of the SKU named by id or servicePlanName."""
    found = next((p for p in sku.plans if ref.lower() in {p.id, p.name.lower()}), None)
    if found is None:
        raise ValueError(f"SKU {sku.part_number} has no plan {ref!r}")
    return found.id
