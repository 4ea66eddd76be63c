"""Per-user leases: two requests for the same user at once are applied one after the other, not both.

A lease is fenced by the ETag of its row: the holder renews it (under that ETag) right before each Graph write and
again before recording what it wrote, so a holder that stalled past its lease and lost it to another worker stops
instead of writing a plan made on stale facts. The same partition keeps the user's HR order: the issuedAt of the
latest HR event applied, so that an older event delivered late does not undo a newer one.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from licensing.adapters.storage.account import LEASES_TABLE, Storage, transient
from licensing.adapters.storage.rows import entity_or_none, table_key
from licensing.core.errors import TransientError

# Longer than any one step a holder takes between two renewals, so a live holder never loses it: it renews right
# before each Graph write, and a write is a single attempt of at most LICENSING_GRAPH_TIMEOUT_SECONDS (<= 60 s; the
# SDK does not retry writes, adapters/graph/client.py), a read at most ~70 s (100 s at a 60 s timeout) with its
# capped retries, storage calls seconds. A crashed holder frees it after this.
LEASE = timedelta(minutes=2)
HR_ORDER = "hr-order"  # RowKey of the user's HR order row, beside the "lease" row


class LeaseLost(TransientError):
    """Another worker took the user's lease (ours expired while we stalled): stop before writing anything."""


@dataclass
class Lease:
    """A taken lease: ``etag`` is the fencing token, replaced by each renewal."""

    storage: Storage
    user_id: str
    holder: str
    etag: str

    async def renew(self, now: datetime) -> None:
        """Extend the lease under its ETag; LeaseLost when someone took it (or released it) meanwhile."""
        table = self.storage.table(LEASES_TABLE)
        row = _lease_row(self.user_id, self.holder, now)
        with transient("renew a user lease"):
            try:
                answer = await table.update_entity(row, etag=self.etag, match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                raise LeaseLost(f"the lease on user {self.user_id} was taken by another worker") from None
        self.etag = answer["etag"]

    async def give_back(self) -> None:
        """Release the lease if it is still ours (same ETag): one taken over meanwhile is not ours to delete."""
        table = self.storage.table(LEASES_TABLE)
        with transient("release a user lease"), suppress(ResourceModifiedError, ResourceNotFoundError):
            await table.delete_entity(
                table_key(self.user_id), "lease", etag=self.etag, match_condition=MatchConditions.IfNotModified
            )


async def take(storage: Storage, user_id: str, *, holder: str, now: datetime) -> Lease | None:
    """Take the user's lease (or an expired one, under its ETag); None while someone else holds it."""
    table = storage.table(LEASES_TABLE)
    key = table_key(user_id)
    row = _lease_row(user_id, holder, now)
    with transient("take a user lease"):
        try:
            answer = await table.create_entity(row)
        except ResourceExistsError:
            try:
                current = await table.get_entity(key, "lease")
            except ResourceNotFoundError:
                return None  # released between our two calls: the next delivery will get it
            if current["ExpiresAt"] > now and current.get("Holder") != holder:
                return None
            try:
                answer = await table.update_entity(
                    row, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
    return Lease(storage, user_id, holder, answer["etag"])


def _lease_row(user_id: str, holder: str, now: datetime) -> dict[str, object]:
    return {"PartitionKey": table_key(user_id), "RowKey": "lease", "Holder": holder, "ExpiresAt": now + LEASE}


@dataclass(frozen=True, slots=True)
class HrOrder:
    """The latest HR event applied to a user: when HR issued it, and its request."""

    issued_at: datetime
    request_id: str


async def hr_order(storage: Storage, user_id: str) -> HrOrder | None:
    """The user's HR order, or None before any HR event with an issuedAt was applied."""
    with transient("read the HR order of a user"):
        row = await entity_or_none(storage.table(LEASES_TABLE), table_key(user_id), HR_ORDER)
    if row is None:
        return None
    return HrOrder(row["IssuedAt"], row.get("RequestId", ""))


async def advance_hr_order(storage: Storage, user_id: str, order: HrOrder) -> None:
    """Move the user's HR order forward to ``order`` (never back), under the row's ETag."""
    table = storage.table(LEASES_TABLE)
    key = table_key(user_id)
    row = {"PartitionKey": key, "RowKey": HR_ORDER, "IssuedAt": order.issued_at, "RequestId": order.request_id}
    with transient("record the HR order of a user"):
        for _ in range(8):  # each lost race is another writer's newer order going in
            try:
                current = await table.get_entity(key, HR_ORDER)
            except ResourceNotFoundError:
                with suppress(ResourceExistsError):
                    await table.create_entity(row)
                    return
                continue
            if current["IssuedAt"] >= order.issued_at:
                return
            with suppress(ResourceModifiedError, ResourceNotFoundError):
                await table.update_entity(
                    row, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
                return
        raise TransientError(f"the HR order of {user_id} kept changing under us")
