"""Claims in the HrEvents table: each eventId (and each Standard Webhooks webhook-id) is processed once.

A claim is created "received", marked "dispatched" once its request is queued, or "released" when that failed; a
later delivery of a dispatched key is a duplicate, of a young undispatched one a retry, of a released or stale one
taken over (under the claim's ETag, so two retries cannot both take it).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

from licensing.adapters.storage.account import transient
from licensing.adapters.storage.rows import table_key

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

IN_FLIGHT = timedelta(seconds=60)  # a claim younger than this belongs to a request still running


async def claim(table: TableClient, key: dict[str, str], received: datetime, fields: dict[str, Any]) -> str:
    """Claim a key (an eventId, a webhook-id): "ours" to process, else what _take_over says."""
    with transient("record an HR event"):
        try:
            await table.create_entity({**key, "Status": "received", "ReceivedAt": received, **fields})
        except ResourceExistsError:
            return await take_over(table, key, received)
    return "ours"


async def release(table: TableClient, key: dict[str, str]) -> None:
    """Give an undispatched claim back, so the next delivery of the event takes it at once."""
    await table.update_entity({**key, "Status": "released"})


async def take_over(table: TableClient, key: dict[str, str], now: datetime) -> str:
    """A delivery of a known eventId: "duplicate" once dispatched, "retry" while another delivery is handling it,
    "ours" when the claim was released or left behind by a request that died (older than IN_FLIGHT).

    Taking a claim over is conditional on its ETag, so two retries cannot both take it.
    """
    existing = await table.get_entity(key["PartitionKey"], key["RowKey"])
    if existing.get("Status") == "dispatched":
        return "duplicate"
    if existing.get("Status") != "released" and now - existing["ReceivedAt"] < IN_FLIGHT:
        return "retry"
    try:
        await table.update_entity(
            {**key, "Status": "received", "ReceivedAt": now},
            etag=existing.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except ResourceModifiedError:
        return "retry"
    return "ours"


def webhook_claim_key(webhook_id: str) -> dict[str, str]:
    """The HrEvents key of a webhook-id's claim, apart from the eventId rows. Keyed by its digest: a 256-character
    id of "/" or "%" would grow to 768 characters once made key-safe, past what a key may hold, and storage's 400
    would be answered "retry" forever. The id itself is kept in the row's WebhookId column."""
    digest = hashlib.sha256(webhook_id.encode()).hexdigest()
    return {"PartitionKey": "w" + digest[0], "RowKey": digest}


def event_claim_key(event_id: str) -> dict[str, str]:
    """The HrEvents key of an eventId's claim: spread over 16 partitions so a burst from HR does not queue on one
    partition's throughput (eventIds are short and key-safe by the schema's pattern, so they are kept as they are)."""
    return {"PartitionKey": hashlib.sha256(event_id.encode()).hexdigest()[0], "RowKey": table_key(event_id)}
