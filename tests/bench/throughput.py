"""`make bench` (throughput part): 1,000 hires against an emulated tenant that enforces a write budget
(Graph's 3,000 / 150 s scaled down to 100 / 15 s: at 300 / 15 s this 2-core machine, running the worker, the
tenant and Azurite at once, is CPU-bound before the budget binds). Time to all-verified vs the floor the budget
implies, ours (the shared write budget) vs the naive way (no budget: 429 + Retry-After steer)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from rich.console import Console
from rich.table import Table

import function_app
from licensing import composition
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost, local_settings
from licensing.dev.tenant import EmulatedTenant, TenantState

HIRES = 1000
BUDGET, WINDOW = 100, 15.0  # Graph's 3,000 / 150 s scaled down until the budget, not this 2-core box, binds


async def run(*, ours: bool) -> dict[str, Any]:
    with Azurite() as azurite:
        state = TenantState.default(provisioning_delay=0)
        users = [state.add_user(f"hire{i:04d}@contoso.onmicrosoft.com", f"Hire {i}", usage_location="US",
                                department="Sales") for i in range(HIRES)]  # fmt: skip
        ems = next(sku for sku in state.skus.values() if sku.part_number == "EMS")
        ems.enabled += HIRES  # seats are not what this measures
        async with EmulatedTenant(state=state) as tenant:
            tenant.faults.write_budget, tenant.faults.write_window = BUDGET, WINDOW
            os.environ.update(local_settings(azurite.connection_string, tenant.base_url))
            os.environ["LICENSING_GRAPH_RETRY_DELAY_SECONDS"] = "1"
            os.environ["LICENSING_WRITE_BUDGET"] = str(BUDGET if ours else 10**9)
            os.environ["LICENSING_WRITE_WINDOW_SECONDS"] = str(int(WINDOW))
            await composition.reset()
            services = await composition.services()
            queue = services.storage.queue(LICENSE_REQUESTS_QUEUE)
            gate = asyncio.Semaphore(32)

            async def send(i: int) -> None:
                async with gate:
                    await queue.send_message(json.dumps({"user": users[i].user_principal_name, "source": "hr",
                                                         "requestId": f"bench-{i}"}))  # fmt: skip

            await asyncio.gather(*(send(i) for i in range(HIRES)))
            host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=5, poll_interval=0.05)
            started = time.perf_counter()
            stats = await host.run_until_idle(limit_seconds=1200)
            elapsed = time.perf_counter() - started
            await host.close()
            verified = 0
            async for row in services.storage.statuses(outcome="verified"):
                verified += row.sku == "EMS"
            await composition.reset()
            return {"seconds": elapsed, "verified": verified, "writes": state.writes["assignLicense"],
                    "throttled": state.throttled_writes, "poisoned": sum(stats.poisoned.values()),
                    "failed": sum(stats.failed.values())}  # fmt: skip


def main() -> None:
    import logging  # noqa: PLC0415

    logging.basicConfig(level=logging.ERROR)
    floor = HIRES / (BUDGET / WINDOW)
    results = {"ours": asyncio.run(run(ours=True)), "naive": asyncio.run(run(ours=False))}
    table = Table(title=f"{HIRES:,} hires, tenant write budget {BUDGET} / {WINDOW:.0f} s (floor {floor:.0f} s)")
    for column in ("variant", "all verified after s", "÷ floor", "verified", "writes", "429s", "poisoned",
                   "failed deliveries"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, r in results.items():
        label = "ours: shared write budget" if name == "ours" else "naive: no budget, 429 + Retry-After steer"
        table.add_row(label, f"{r['seconds']:.0f}", f"{r['seconds'] / floor:.2f}x", f"{r['verified']:,}",
                      f"{r['writes']:,}", f"{r['throttled']:,}", str(r["poisoned"]), str(r["failed"]))  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
