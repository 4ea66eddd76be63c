"""The emulated tenant: SKUs, users and their licenses, with Graph's rules for changing them. No HTTP.

Besides the directory it keeps what a large tenant needs to stay fast and what delta queries read:
users in an append-only listing order (pages cost O(page), not O(users)), a UPN index, seat counts kept
up to date by every write, and a change log - one global sequence number, and per user the sequence
of its last change (create, PATCH, assignLicense, delete).
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

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
DELTA_PAGE_SIZE = 200  # users per /users/delta page: what Graph sends (it ignores $top there)
DELTA_TOKEN_LIFETIME = 7 * 86400.0  # seconds: Graph expires directory delta tokens after seven days
# Up to this many users seats are counted afresh on every read, so tests may edit ``user.assignments`` by
# hand; above it the running counts kept by the tenant's own writes are used.
SEAT_SCAN_LIMIT = 5000
_T = TypeVar("_T")
_Changed = Callable[[str, User | None, User | None], None]


class Directory(dict[str, User]):
    """Users by id (a dict), also kept in an append-only listing order and indexed by lower-cased UPN.

    ``order`` never shrinks: a deleted id stays as a tombstone, so a position in it (what page tokens
    carry) keeps meaning the same place while users come and go, and a user re-added keeps its old
    place. Item assignment, ``del`` and ``pop`` keep the order, the UPN index and the tenant's change
    log and seat counts right; ``update``, ``setdefault`` and ``popitem`` bypass them (do not use them).
    """

    def __init__(self, changed: _Changed) -> None:
        super().__init__()
        self.order: list[str] = []
        self.by_upn: dict[str, str] = {}  # lower-cased userPrincipalName -> id
        self._listed: set[str] = set()
        self._changed = changed

    def __setitem__(self, key: str, value: User) -> None:
        old = self.get(key)
        super().__setitem__(key, value)
        if key not in self._listed:
            self._listed.add(key)
            self.order.append(key)
        if old is not None:
            self._unindex(key, old)
        self.by_upn[value.user_principal_name.lower()] = key
        self._changed(key, old, value)

    def __delitem__(self, key: str) -> None:
        old = self[key]
        super().__delitem__(key)
        self._unindex(key, old)
        self._changed(key, old, None)

    @overload
    def pop(self, key: str, /) -> User: ...
    @overload
    def pop(self, key: str, default: User, /) -> User: ...
    @overload
    def pop(self, key: str, default: _T, /) -> User | _T: ...
    def pop(self, key: str, /, *default: Any) -> Any:
        """dict.pop, through ``del`` so the indexes and the change log see it."""
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def load(self, users: Sequence[User]) -> None:
        """Add many new users at once (ids and UPNs not yet present); the caller logs the changes."""
        for user in users:
            dict.__setitem__(self, user.id, user)
        fresh = [u.id for u in users if u.id not in self._listed]
        self.order.extend(fresh)
        self._listed.update(fresh)
        self.by_upn.update((u.user_principal_name.lower(), u.id) for u in users)

    def clear(self) -> None:
        """Remove every user, one ``del`` at a time."""
        for key in list(self):
            del self[key]

    def _unindex(self, key: str, user: User) -> None:
        upn = user.user_principal_name.lower()
        if self.by_upn.get(upn) == key:
            del self.by_upn[upn]


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
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{ref}' does not exist or one of its queried reference-property objects are not present.",
            )
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
            changed = changed or getattr(user, name) != value
            setattr(user, name, value)
        if changed:
            self.record_change(user.id)
        self.writes["updateUser"] += 1
        return user

    def delete_user(self, user_ref: str) -> User:
        """Soft-delete a user (DELETE /users/{id}): gone from /users, its seats freed, kept in deleted_users.

        Delta queries then report it as ``{"id": ..., "@removed": {"reason": "changed"}}`` (restorable),
        while a user removed with ``del state.users[id]`` is reported with reason ``deleted`` (permanent).
        """
        user = self.user(user_ref)
        self.deleted_users[user.id] = user
        del self.users[user.id]
        self.writes["deleteUser"] += 1
        return user

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
        """Invalidate every delta and skip token handed out so far (their next use is syncStateNotFound)."""
        self.delta_epoch = new_id()[:8]

    def force_status(self, user_ref: str, plan_name: str, status: str | None) -> None:
        """Pin an enabled plan's provisioningStatus for a user (e.g. "Error", "PendingInput"); None unpins."""
        key = (self.user(user_ref).id, plan_name.upper())
        if status is None:
            self.status_overrides.pop(key, None)
        else:
            self.status_overrides[key] = status

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

    @property
    def _directory(self) -> Directory:
        users = self.users
        assert isinstance(users, Directory), "TenantState.users must stay the Directory it was created with"
        return users

    def _pinned_users(self) -> frozenset[str]:
        """Users with a pinned plan status (recomputed when status_overrides grows or shrinks)."""
        if self._pinned[0] != len(self.status_overrides):
            self._pinned = (len(self.status_overrides), frozenset(u for u, _ in self.status_overrides))
        return self._pinned[1]

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
        # Only a pinned status can be Error (see plan_status): look there, not at every plan's provisioning.
        overrides = self.status_overrides
        if user.id in self._pinned_users() and any(
            overrides.get((user.id, p.name.upper())) == "Error"
            for p in self.skus[assignment.sku_id].plans
            if p.id not in assignment.disabled_plans
        ):
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


def _held(user: User) -> frozenset[str]:
    """The SKU ids a user holds by any path."""
    return frozenset(a.sku_id for a in user.assignments)


def _licenses(user: User) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """What a user holds, as comparable tuples: (SKU, group, disabled plans) per assignment."""
    return [(a.sku_id, a.assigned_by_group, tuple(a.disabled_plans)) for a in user.assignments]


def detail_id(tenant_id: str, sku_id: str) -> str:
    """licenseDetails ids as Graph builds them: base64url of the tenant and SKU GUIDs (little-endian)."""
    raw = uuid.UUID(tenant_id).bytes_le + uuid.UUID(sku_id).bytes_le
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
