"""`make bench`: the status page's snapshot over a large LicenseStatus table (Azurite), ours vs the naive way.

Ours scans four columns (PartitionKey, RowKey, Outcome, UpdatedAt) and then reads the 20 newest failures
whole; the naive way reads every column of every row. Both fold the rows with the same Tally, so the figures
differ only by what crosses the wire. Prints one table; figures go in the README.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta

from azure.data.tables.aio import TableServiceClient
from rich.console import Console
from rich.table import Table

from licensing import composition
from licensing.adapters.storage.account import STATUS_TABLE
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.services.overview import Tally, take_snapshot

ROWS = int(os.environ.get("BENCH_STATUS_ROWS", "10000"))
ENABLED = ("AAD_PREMIUM", "RMS_S_PREMIUM", "ADALLOM_S_DISCOVERY", "EXCHANGE_S_FOUNDATION", "RMS_S_ENTERPRISE",
           "MFA_PREMIUM")  # fmt: skip
PLANS = json.dumps(dict.fromkeys(ENABLED, "Success") | {"INTUNE_A": "Disabled"})


def _row(i: int, at: datetime) -> dict[str, object]:
    """A realistic verified (or, one in twenty, failed) row: the wide columns are what ours does not read."""
    failed = i % 20 == 0
    return {
        "PartitionKey": f"{i:08d}-5f2e-4c1a-9b7d-000000000000", "RowKey": "EMS",
        "UserPrincipalName": f"user{i}@contoso.onmicrosoft.com", "Outcome": "failed" if failed else "verified",
        "Reason": "RMS_S_PREMIUM is Error (expected Success)" if failed else "every plan as the policy expects",
        "RequestId": f"hr-{i:012d}", "Source": "hr", "Rule": "everyone", "DisabledPlans": "INTUNE_A",
        "PlanStatuses": PLANS, "Attempts": 1, "UpdatedAt": at - timedelta(seconds=i),
        "AssignedAt": at - timedelta(seconds=i + 90), "VerifiedAt": at - timedelta(seconds=i),
    }  # fmt: skip


async def fill(connection_string: str) -> None:
    """ROWS status rows, 64 inserts in flight (each user is its own partition, so no batch transactions)."""
    at = datetime.now(UTC)
    async with TableServiceClient.from_connection_string(connection_string) as service:
        table = await service.create_table_if_not_exists(STATUS_TABLE)
        gate = asyncio.Semaphore(64)

        async def put(i: int) -> None:
            async with gate:
                await table.create_entity(_row(i, at))

        await asyncio.gather(*(put(i) for i in random.sample(range(ROWS), ROWS)))


async def naive(connection_string: str) -> tuple[float, int]:
    """Every column of every row, folded by the same Tally."""
    from licensing.adapters.storage.rows import status_from_entity as _status  # noqa: PLC0415  # the same row parsing as ours

    started = time.perf_counter()
    tally = Tally()
    async with TableServiceClient.from_connection_string(connection_string) as service:
        async for entity in service.get_table_client(STATUS_TABLE).list_entities():
            tally.add(_status(entity))
    return time.perf_counter() - started, sum(tally.counts.values())


async def ours() -> tuple[float, int, int]:
    """take_snapshot as the page calls it (the catalog is cached by then, as it is on a warm worker)."""
    services = await composition.services()
    await services.graph.catalog()
    started = time.perf_counter()
    snapshot = await take_snapshot(services)
    return time.perf_counter() - started, sum(count for _, count in snapshot.outcomes), len(snapshot.failures)


async def main() -> None:
    """Fill Azurite, then time both ways twice (the better of two) and print the table."""
    with Azurite() as azurite:
        async with EmulatedTenant(state=TenantState.default()) as tenant:
            os.environ.update(local_settings(azurite.connection_string, tenant.base_url))
            await composition.reset()
            filled = time.perf_counter()
            await fill(azurite.connection_string)
            filled = time.perf_counter() - filled
            naive_runs = [await naive(azurite.connection_string) for _ in range(2)]
            our_runs = [await ours() for _ in range(2)]
            await composition.reset()
    naive_s, naive_rows = min(naive_runs)
    ours_s, our_rows, failures = min(our_runs)
    assert naive_rows == our_rows == ROWS, (naive_rows, our_rows)
    assert failures == 20
    table = Table(title=f"Status page snapshot over {ROWS:,} LicenseStatus rows (Azurite; filled in {filled:.0f} s)")
    for column in ("way", "seconds", "rows counted", "speed-up"):
        table.add_column(column, justify="left" if column == "way" else "right")
    table.add_row("naive: read every column", f"{naive_s:.2f}", f"{naive_rows:,}", "1.0x")
    table.add_row("ours: 4 columns + 20 rows read whole", f"{ours_s:.2f}", f"{our_rows:,}", f"{naive_s / ours_s:.1f}x")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
