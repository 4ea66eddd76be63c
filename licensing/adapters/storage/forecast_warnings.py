"""The seat forecast's SeatsLow warnings: one claim row per SKU and day (partition ``forecast-warned`` of the
ScheduledRequests table), so a warning is recorded at most once a day however many hires or sweeps check."""

from __future__ import annotations

from contextlib import suppress
from datetime import date, datetime

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from licensing.adapters.storage.account import SCHEDULED_TABLE, Storage, transient
from licensing.adapters.storage.rows import table_key

WARNED = "forecast-warned"


async def claim_warning(storage: Storage, *, part_number: str, day: date) -> bool:
    """True for the first caller per SKU and day: the one that records the day's SeatsLow forecast warning."""
    entity = {"PartitionKey": WARNED, "RowKey": _claim_key(part_number, day)}
    with transient("claim a seat forecast warning"):
        try:
            await storage.table(SCHEDULED_TABLE).create_entity(entity)
        except ResourceExistsError:
            return False
    return True


async def release_warning(storage: Storage, *, part_number: str, day: date) -> None:
    """Give a claim back when its warning could not be recorded, so a later call records it (best effort)."""
    with suppress(Exception):
        await storage.table(SCHEDULED_TABLE).delete_entity(WARNED, _claim_key(part_number, day))


def _claim_key(part_number: str, day: date) -> str:
    return f"{day.isoformat()}-{table_key(part_number.casefold())}"


async def purge_old_claims(storage: Storage, *, now: datetime) -> None:
    """Drop the claims of days before today (one row per SKU a day)."""
    table = storage.table(SCHEDULED_TABLE)
    old = table.query_entities(
        "PartitionKey eq @pk and RowKey lt @today", parameters={"pk": WARNED, "today": now.date().isoformat()}
    )
    with transient("purge old seat forecast warning claims"):
        async for row in old:
            with suppress(ResourceNotFoundError):
                await table.delete_entity(WARNED, row["RowKey"])
