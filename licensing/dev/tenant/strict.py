"""How closely the emulated tenant follows Microsoft Graph's documentation where it is easy to be kind.

``Strictness()`` (every field at its default) is Graph as documented; ``Strictness.lenient()`` is the
emulator as it behaved before, kinder to a client than Graph is. A tenant made without an explicit
``strictness`` takes the strict profile when ``STRICT_BY_DEFAULT`` is True, else the lenient one.
The profile stays mutable: set fields on ``state.strictness`` or POST /_emulator/strictness.

Each field cites the page of learn.microsoft.com it follows.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

_T = TypeVar("_T")

# The integrator flips this once the app copes with Graph as documented.
STRICT_BY_DEFAULT = True  # the tests run against Graph as documented; --lenient for the old, kinder tenant

SETTLING_STATUSES = ("PendingInput", "PendingActivation", "PendingProvisioning", "Success", "Error")
DELTA_EXPIRED = ("410", "syncStateNotFound")

# Plans Entra will not let one user hold at once ("Service plans that cannot be assigned at the same time",
# https://learn.microsoft.com/entra/identity/users/licensing-service-plan-reference, and the
# MutuallyExclusiveViolation of https://learn.microsoft.com/graph/api/resources/licenseassignmentstate).
# Exchange Online Plan 1 / Plan 2 may nowadays be held together, but many tenants still see them refused.
REAL_EXCLUSIVE_PAIRS: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE"),
        ("EXCHANGE_S_DESKLESS", "EXCHANGE_S_STANDARD"),
        ("EXCHANGE_S_DESKLESS", "EXCHANGE_S_ENTERPRISE"),
        ("SHAREPOINTSTANDARD", "SHAREPOINTENTERPRISE"),
        ("SHAREPOINTDESKLESS", "SHAREPOINTSTANDARD"),
        ("SHAREPOINTDESKLESS", "SHAREPOINTENTERPRISE"),
    )
)


@dataclass
class Strictness:
    """One switch per documented behaviour; the defaults are Graph as documented (see the module doc)."""

    # https://learn.microsoft.com/graph/api/user-list-licensedetails - permissions: Application "Not supported".
    license_details_app_only_refused: bool = True
    # https://learn.microsoft.com/graph/api/resources/serviceplaninfo - PendingInput: "not yet provisioned,
    # awaiting service confirmation"; PendingProvisioning is a plan Microsoft added that is not yet active.
    settling_status: str = "PendingInput"
    # https://learn.microsoft.com/graph/api/user-assignlicense - a usageLocation just PATCHed is not yet
    # replicated to the licensing service: seconds of the tenant's clock it is still "invalid".
    usage_location_lag: float = 2.0
    # https://learn.microsoft.com/graph/delta-query-overview - a stale token answers 410 Gone with a
    # Location header to start over (error resyncRequired); the older answer is 400 syncStateNotFound.
    delta_expired: Literal["410", "syncStateNotFound"] = "410"
    # https://learn.microsoft.com/graph/api/user-delete and
    # https://learn.microsoft.com/graph/api/resources/change-notifications-api-overview (users): a
    # soft-deleted user arrives as ``updated``; ``deleted`` is a permanent deletion.
    soft_delete: bool = True
    # https://learn.microsoft.com/graph/change-notifications-overview - the app's own writes to a user
    # notify its subscriptions like anyone else's.
    notify_own_writes: bool = True
    # https://learn.microsoft.com/graph/json-batching - "responses might not be in the same order".
    shuffle_batch: bool = True
    # https://learn.microsoft.com/graph/api/resources/licenseunitsdetail - warning units are in their grace
    # period and still assignable.
    warning_units_assignable: bool = True
    # https://learn.microsoft.com/graph/api/intune-devices-manageddevice-list - without
    # DeviceManagementManagedDevices.Read.All the list is refused (403). Off: the app holds the permission.
    devices_forbidden: bool = False
    # https://learn.microsoft.com/graph/api/user-assignlicense - "service plans {a}, {b} are mutually exclusive".
    mutually_exclusive: frozenset[frozenset[str]] = field(default_factory=lambda: REAL_EXCLUSIVE_PAIRS)
    # https://learn.microsoft.com/graph/api/user-get - a UPN starting with ``$`` must be addressed as
    # ``/users('$x@contoso.com')``; ``/users/$x@contoso.com`` is refused.
    dollar_upn_needs_quotes: bool = True
    batch_seed: int = 0  # seeds shuffle_batch's order
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.batch_seed)  # noqa: S311  # test double, not cryptography

    def batch_order(self, answers: Sequence[_T]) -> list[_T]:
        """$batch answers in the order to send them: shuffled (never left in request order, so a client
        that relies on the order fails every time, not by chance) with ``shuffle_batch``, else as given."""
        out = list(answers)
        if not self.shuffle_batch or len(out) < 2:
            return out
        self._rng.shuffle(out)
        if out == list(answers):
            out = out[1:] + out[:1]
        return out

    @classmethod
    def lenient(cls) -> Strictness:
        """The emulator as it was before it followed the docs this closely."""
        return cls(
            license_details_app_only_refused=False,
            settling_status="PendingProvisioning",
            usage_location_lag=0.0,
            delta_expired="syncStateNotFound",
            soft_delete=False,
            notify_own_writes=False,
            shuffle_batch=False,
            warning_units_assignable=False,
            devices_forbidden=False,
            mutually_exclusive=frozenset(),
            dollar_upn_needs_quotes=False,
        )

    @classmethod
    def by_default(cls) -> Strictness:
        """The profile a tenant takes when none is given: strict if STRICT_BY_DEFAULT, else lenient."""
        return cls() if STRICT_BY_DEFAULT else cls.lenient()

    def update(self, changes: Mapping[str, Any]) -> None:
        """Set fields from a JSON object, all or none (TypeError / ValueError for a wrong type / value)."""
        known = {f.name for f in fields(self) if not f.name.startswith("_")}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown strictness setting {name!r}; known: {', '.join(sorted(known))}")
            checked[name] = _coerce(name, value)
        for name, value in checked.items():
            setattr(self, name, value)
        if "batch_seed" in checked:
            self.__post_init__()

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (pairs as sorted lists)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["mutually_exclusive"] = sorted(sorted(pair) for pair in self.mutually_exclusive)
        return out


def _coerce(name: str, value: Any) -> Any:  # noqa: ANN401  # a JSON value of any type
    if name == "settling_status":
        if value not in SETTLING_STATUSES:
            raise ValueError(f"settling_status must be one of {', '.join(SETTLING_STATUSES)}")
        return value
    if name == "delta_expired":
        if value not in DELTA_EXPIRED:
            raise ValueError("delta_expired must be '410' or 'syncStateNotFound'")
        return value
    if name == "mutually_exclusive":
        return _pairs(value)
    if name == "usage_location_lag":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError("usage_location_lag must be a number of seconds >= 0")
        return float(value)
    if name == "batch_seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("batch_seed must be an integer")
        return value
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false")
    return value


def _pairs(value: Any) -> frozenset[frozenset[str]]:  # noqa: ANN401  # a JSON value of any type
    if not isinstance(value, Iterable) or isinstance(value, str | bytes | Mapping):
        raise TypeError("mutually_exclusive must be a list of [plan, plan] pairs")
    pairs = []
    for pair in value:
        names = list(pair) if isinstance(pair, Iterable) and not isinstance(pair, str) else []
        if len(names) != 2 or not all(isinstance(n, str) and n for n in names) or names[0] == names[1]:
            raise ValueError("each mutually_exclusive entry must be two different plan names")
        pairs.append(frozenset(n.upper() for n in names))
    return frozenset(pairs)
