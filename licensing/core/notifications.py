"""Graph change notifications for users, read as plain data: which items are ours and which users changed. Pure.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks: a batch is ``{"value": [...]}``; each item
carries clientState, subscriptionId, tenantId, changeType and the resource. Users have no "created" change type: a
new (or soft-deleted) user arrives as "updated".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Graph's docs name no batch size. Past this, refuse the POST rather than spend Graph's 3 s on it (Graph redelivers
# for 4 hours; the nightly sweep reads every user anyway).
MAX_ITEMS = 1000


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True)
class Scope:
    """What makes an item ours: the clientState, and (when known) our tenant and our subscriptions."""

    client_state: str | None
    tenant_id: str | None = None  # None: not checked (LICENSING_TENANT_ID unset)
    subscriptions: frozenset[str] | None = None  # None: none recorded yet, not checked

    def refuses(self, item: Mapping[str, Any]) -> str | None:
        """Why the item is not ours ("clientState", "tenantId", "subscriptionId"), or None."""
        given = item.get("clientState")
        if not self.client_state or not isinstance(given, str) or not same_secret(given, self.client_state):
            return "clientState"
        # Graph names the tenant tenantId in change notifications; some lifecycle ones carry organizationId.
        tenant = item.get("tenantId") or item.get("organizationId")
        if self.tenant_id is not None and (not isinstance(tenant, str) or tenant.lower() != self.tenant_id):
            return "tenantId"
        subscription = item.get("subscriptionId")
        if self.subscriptions is not None and (
            not isinstance(subscription, str) or subscription not in self.subscriptions
        ):
            return "subscriptionId"
        return None


@dataclass(frozen=True, slots=True)
class Changes:
    """A notification batch read: per user the items naming them (by replay key), and what was dropped."""

    users: dict[str, list[str]] = field(default_factory=dict)
    mismatched: int = 0  # wrong clientState
    foreign: int = 0  # another tenant or a subscription that is not ours
    ignored: int = 0  # not a user change we act on


def batch_items(payload: Any) -> list[Any]:  # noqa: ANN401  # JSON
    """The items of a notification batch: TypeError if it is not one, OverflowError past MAX_ITEMS."""
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise TypeError('expected {"value": [...]}')
    if len(items) > MAX_ITEMS:
        raise OverflowError(f"{len(items):,} notifications in one request; the limit is {MAX_ITEMS:,}")
    return items


def read_changes(items: list[Any], scope: Scope) -> Changes:
    """The users to re-evaluate, each once, with every item's replay key, and what was dropped. Pure."""
    changes = Changes()
    mismatched = foreign = ignored = 0
    for item in items:
        if not isinstance(item, dict):
            ignored += 1
            continue
        if (why := scope.refuses(item)) is not None:
            mismatched += why == "clientState"
            foreign += why != "clientState"
            continue
        data, resource = item.get("resourceData"), item.get("resource")
        user_id = (data.get("id") if isinstance(data, dict) else None) or (
            resource.rpartition("/")[2] if isinstance(resource, str) else None
        )
        # users have no "created" change type: a new user arrives as "updated", and onboarding decides
        # from the policy whether it lacks a license. "deleted" users free their licenses with them.
        # a tuple, not a set: a list where a string belongs must be ignored, not raise "unhashable"
        if item.get("changeType") in ("updated", "created") and isinstance(user_id, str) and 0 < len(user_id) <= 256:
            changes.users.setdefault(user_id, []).append(replay_key(item))
        else:
            ignored += 1
    return Changes(changes.users, mismatched, foreign, ignored)


def replay_key(item: Mapping[str, Any]) -> str:
    """The same notification delivered again has the same key: Graph's own id for it, else all of its content."""
    own_id = item.get("id")
    basis: Any = (
        [item.get("subscriptionId"), item.get("resource"), item.get("changeType"), own_id]
        if isinstance(own_id, str) and own_id
        else item
    )
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()
