"""Soak: many onboarding requests (10 % duplicates) through the local host while the emulated Graph throttles
(10 % 429 with Retry-After), fails (3 % 503), answers too slowly (2 % past the client timeout), and storage
restarts once. SOAK_USERS sets the size: `make soak` runs 2,000; `make test` (and so CI) runs 60."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import function_app
from licensing import composition
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost, local_settings
from licensing.dev.tenant import EmulatedTenant, Faults, TenantState
from tests.helpers import EMS, INTUNE_A, statuses

USERS = int(os.environ.get("SOAK_USERS", "60"))
WAIT_SECONDS = 60 + USERS * 0.5  # generous: 2,000 users write a third of their licenses in a few minutes
LIMIT_SECONDS = 300 + USERS * 1.5  # the local host's own limit for the whole run
UNLICENSABLE = max(USERS // 100, 2)  # executives: EMS E5 has no free seat, so they end blocked, not verified


async def until(done: Callable[[], bool], running: asyncio.Task[Any], *, what: str) -> None:
    """Wait for a condition while the host runs; fail loudly if it never comes or the host stops first."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not done():
        if running.done():
            pytest.fail(f"the local host stopped before {what}: {running.result()}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"no {what} within {WAIT_SECONDS} s")
        await asyncio.sleep(0.1)


@pytest.mark.soak
async def test_soak_nothing_lost_nothing_doubled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every licensable user ends verified, none is lost or poisoned, and writes stay within the needed + retried."""
    rng = random.Random(5)  # test data
    azurite = Azurite(location=tmp_path / "azurite").start()
    faults = Faults(throttle_rate=0.10, unavailable_rate=0.03, retry_after=1, slow_rate=0.02, slow_ms=2500, seed=9)
    state = TenantState.default(provisioning_delay=0.5)
    # The fixture tenant has 250 EMS seats: size it to the soak, or most of a 2,000-user run ends blocked.
    state.skus[EMS].enabled = max(state.skus[EMS].enabled, USERS + 10)
    try:
        async with EmulatedTenant(state=state, faults=faults) as tenant:
            env = {
                **local_settings(azurite.connection_string, tenant.base_url),
                "LICENSING_GRAPH_TIMEOUT_SECONDS": "1.5",
            }
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            await composition.reset()
            services = await composition.services()
            users = [
                state.add_user(f"soak{i:05d}@contoso.onmicrosoft.com", f"Soak {i}", usage_location="US",
                               department="Executive" if i < UNLICENSABLE else "Sales")
                for i in range(USERS)
            ]  # fmt: skip
            bodies = [
                {"user": u.user_principal_name, "source": "hr", "requestId": f"soak-{i}"} for i, u in enumerate(users)
            ]
            bodies += rng.sample(bodies, USERS // 10)  # 10 % delivered twice
            rng.shuffle(bodies)
            queue = services.storage.queue(LICENSE_REQUESTS_QUEUE)
            await asyncio.gather(*(queue.send_message(json.dumps(b)) for b in bodies))
            host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=1, poll_interval=0.05,
                             lease_seconds=20)  # fmt: skip
            running = asyncio.create_task(host.run_until_idle(limit_seconds=LIMIT_SECONDS))
            await until(lambda: state.writes["assignLicense"] >= USERS // 3, running, what="a third of the writes")
            await asyncio.to_thread(azurite.stop)
            await asyncio.to_thread(azurite.start)
            stats = await running
            await host.close()

            verified = lost = inconsistent = 0
            for i, user in enumerate(users):
                rows = await statuses(services, user.id)
                wanted = "EMSPREMIUM" if i < UNLICENSABLE else "EMS"
                row = rows.get(wanted)
                if row is None:
                    lost += 1
                    continue
                if row.outcome == "verified":
                    verified += 1
                    held = [(a.sku_id, a.disabled_plans) for a in user.assignments]
                    inconsistent += held != [(EMS, [INTUNE_A])]
                elif i >= UNLICENSABLE:
                    inconsistent += 1
            needed = USERS - UNLICENSABLE
            writes = state.writes["assignLicense"]
            timed_out_writes = state.slow_answers  # a write applied while the client had given up is retried
            print(f"\nsoak: users={USERS} messages={len(bodies)} verified={verified} lost={lost} "
                  f"poisoned={sum(stats.poisoned.values())} assignLicense={writes} (needed {needed}, slow answers "
                  f"{timed_out_writes}) failed deliveries={sum(stats.failed.values())} "
                  f"429s={state.faulted.total()} storage errors={host.storage_errors}")  # fmt: skip
            failures = [f"{r.user_key}/{r.sku}: {r.reason}" async for r in services.storage.statuses(outcome="failed")]
            assert (verified, lost, stats.poisoned) == (needed, 0, {}), failures[:5]
            assert inconsistent == 0
            assert writes <= needed + timed_out_writes + sum(stats.failed.values())
            await composition.reset()
    finally:
        azurite.stop()
