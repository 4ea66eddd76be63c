"""The tenant's users: a dict by id that also keeps an append-only listing order and a UPN index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from licensing.dev.tenant.model import User

_T = TypeVar("_T")
Changed = Callable[[str, User | None, User | None], None]


class Directory(dict[str, User]):
    """Users by id (a dict), also kept in an append-only listing order and indexed by lower-cased UPN.

    ``order`` never shrinks: a deleted id stays as a tombstone, so a position in it (what page tokens
    carry) keeps meaning the same place while users come and go, and a user re-added keeps its old
    place. Item assignment, ``del`` and ``pop`` keep the order, the UPN index and the tenant's change
    log and seat counts right; ``update``, ``setdefault`` and ``popitem`` bypass them (do not use them).
    """

    def __init__(self, changed: Changed) -> None:
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
