"""Per-user leases: two requests for the same user at once are applied one after the other, not both."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from licensing.adapters.storage.account import LEASES_TABLE, Storage, transient
from licensing.adapters.storage.rows import table_key

LEASE = timedelta(minutes=2)  # longer than one onboarding takes; a crashed holder frees it after this


async def take(storage: Storage, user_id: str, *, holder: str, now: datetime) -> bool:
    """Take the user's lease (or an expired one, under its ETag); False while someone else holds it."""
    table = storage.table(LEASES_TABLE)
    key = table_key(user_id)
    row = {"PartitionKey": key, "RowKey": "lease", "Holder": holder, "ExpiresAt": now + LEASE}
    with transient("take a user lease"):
        try:
            await table.create_entity(row)
        except ResourceExistsError:
            try:
                current = await table.get_entity(key, "lease")
            except ResourceNotFoundError:
                return False  # released between our two calls: the next delivery will get it
            if current["ExpiresAt"] > now and current.get("Holder") != holder:
                return False
            try:
                await table.update_entity(
                    row, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
    return True


async def give_back(storage: Storage, user_id: str, *, holder: str) -> None:
    """Release the lease if it is still ours."""
    table = storage.table(LEASES_TABLE)
    with transient("release a user lease"):
        try:
            current = await table.get_entity(table_key(user_id), "lease")
        except ResourceNotFoundError:
            return
        if current.get("Holder") == holder:
            # expired and taken over meanwhile: not ours to delete any more
            with suppress(ResourceModifiedError, ResourceNotFoundError):
                await table.delete_entity(current, match_condition=MatchConditions.IfNotModified)  # under its ETag
