"""`make bench` (sweep part): 100k users, 20 ms per Graph request, ours vs the naive way, in one run.

The tenant is as strict as Graph's documentation (licenseDetails refused to the app, $batch answers shuffled), so
the provisioning check takes the app-only path (assignedPlans + provisionedPlans); LICENSING_DEVICE_LIMIT_CHECK is
on, with Intune devices for the users who hold Intune (tests/bench/sweep_tenant.py: 1-3 each, over the limit for
one user in a thousand).
The tenant runs in its own process (its memory is not ours); each sweep runs in a fresh child process so its
peak RSS is measured alone. The naive way (one app-only plan read per user, sequential) is timed on a sample
and scaled to the tenant size, as the table says.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from licensing.adapters.storage.account import Storage
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings
from licensing.settings import APP_ROOT, Settings

LATENCY_MS = 20
SIZES = (10_000, 100_000)
NAIVE_SAMPLE = 300
PLANS_SELECT = "id,assignedLicenses,assignedPlans,provisionedPlans,licenseAssignmentStates"


def start_tenant(users: int) -> tuple[subprocess.Popen[str], str]:
    """The strict tenant with N generated users and their devices, in its own process; returns it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.sweep_tenant", "--port", "0", "--generate", str(users), "--drift", "0.1",
         "--latency-ms", str(LATENCY_MS)],
        stdout=subprocess.PIPE, text=True, cwd=APP_ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    return proc, base_url


async def seed_unsettled(env: dict[str, str], base_url: str) -> int:
    """Mark the generated provisioning-error users as recently assigned, as the onboarding flow would have."""
    root = base_url.rsplit("/v1.0", 1)[0]
    async with httpx.AsyncClient(timeout=120) as client:
        expected = (await client.get(f"{root}/_emulator/expected")).json()
        ids = expected["provisioning-error"]
        storage = Storage.from_settings(Settings.from_env(env).require_storage())
        await storage.ensure_created()
        gate = asyncio.Semaphore(32)

        async def put(user_id: str) -> None:
            async with gate:
                await storage.put_status(StatusRecord(user_id, "EMS", user_id, "pending", "bench", "r", "hr",
                                                      disabled_plans=("INTUNE_A",)))  # fmt: skip

        await asyncio.gather(*(put(u) for u in ids))
        await storage.close()
    return len(ids)


def sweep_in_child(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.bench.sweep_child", "--full"], env={**os.environ, **env}, cwd=APP_ROOT,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def naive_per_user_ms(base_url: str, n: int) -> float:
    """One app-only plan read per user, sequential, like a PowerShell loop of Get-MgUser -Property assignedPlans."""
    async with httpx.AsyncClient(timeout=60) as client:
        page = (await client.get(f"{base_url}/users", params={"$select": "id", "$top": str(n)})).json()["value"]
        started = time.perf_counter()
        for user in page:
            (await client.get(f"{base_url}/users/{user['id']}", params={"$select": PLANS_SELECT})).raise_for_status()
        return (time.perf_counter() - started) * 1000 / len(page)


def main() -> None:
    console = Console()
    rows = []
    for size in SIZES:
        with Azurite() as azurite:  # a fresh store per size: nothing from the previous run is "unsettled"
            tenant, base_url = start_tenant(size)
            try:
                env = {
                    **local_settings(azurite.connection_string, base_url),
                    "LICENSING_GRAPH_RETRY_DELAY_SECONDS": "1",
                    "LICENSING_DEVICE_LIMIT_CHECK": "true",
                }
                unsettled = asyncio.run(seed_unsettled(env, base_url))
                ours = sweep_in_child(env)
                naive_ms = asyncio.run(naive_per_user_ms(base_url, NAIVE_SAMPLE)) if size == SIZES[-1] else None
                stats = httpx.get(base_url.rsplit("/v1.0", 1)[0] + "/_emulator/stats", timeout=30).json()
                ours["tenant_requests"] = stats.get("requests", {})
                devices = int(stats.get("devices") or 0)
            finally:
                tenant.terminate()
                tenant.wait()
            # pages of users and of devices, the unsettled users' batches (+1: the refused licenseDetails batch)
            bound = math.ceil(size / 999) + math.ceil(devices / 1000) + math.ceil(unsettled / 20) + 6
            rows.append((size, unsettled, ours, bound, naive_ms))
    title = f"Sweep, {LATENCY_MS} ms injected per Graph request (report mode, full read, app-only, device count on)"
    table = Table(title=title)
    for column in ("users", "ours s", "ours Graph requests", "bound", "peak RSS MB", "naive s", "speed-up", "devices"):
        table.add_column(column, justify="right")
    for size, _unsettled, ours, bound, naive_ms in rows:
        naive_s = naive_ms * size / 1000 if naive_ms else None
        table.add_row(
            f"{size:,}", f"{ours['seconds']:.1f}", f"{ours['requests']:,}", f"≤ {bound:,}",
            f"{ours['peak_rss_mb']:.0f}", f"{naive_s:,.0f} (sample {NAIVE_SAMPLE}, scaled)" if naive_s else "-",
            f"{naive_s / ours['seconds']:.0f}x" if naive_s else "-", f"{ours.get('devices') or 0:,}",
        )  # fmt: skip
    console.print(table)
    small, large = rows[0][2], rows[-1][2]
    console.print(f"requests the tenant saw at {SIZES[-1]:,} users: {large['tenant_requests']}")
    naive_large = rows[-1][4] * SIZES[-1] / 1000 if rows[-1][4] else 0.0
    console.print(f"targets at {SIZES[-1]:,} users: <= 30 s ({large['seconds']:.1f} s), >= 50x naive "
                  f"({naive_large / large['seconds']:.0f}x); devices counted {large.get('devices')}, notes "
                  f"{large.get('notes')}")  # fmt: skip
    console.print(f"peak RSS {SIZES[-1]:,} / {SIZES[0]:,} users: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
                  f"(target <= 1.2x); drift found at {SIZES[-1]:,}: {large['drift']}")  # fmt: skip


if __name__ == "__main__":
    main()
