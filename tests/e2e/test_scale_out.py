"""Scale-out soak: three worker processes (three app instances) against one Azurite and one emulated tenant.

Graph throttles (10 % 429), fails (3 % 503) and answers too late (2 %), 10 % of requests arrive twice, storage
restarts once, and a fifth more users get HR hire / move / terminate / rehire sequences delivered in any order.
SOAK_USERS sets the size: `make soak` runs 2,000; `make test` (and so CI) runs 45. Asserts what the leases, the
write budget and the status rows' ETags exist for: every licensable user ends verified with the license the policy
gives (for an HR sequence: what its latest-issued step implies), nothing is lost or poisoned, no status row goes
backwards, and the assignLicense writes stay within what was needed plus what had to be repeated.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from licensing.adapters.storage.account import Storage
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings
from licensing.dev.tenant import EmulatedTenant, Faults, TenantState
from licensing.settings import APP_ROOT, StorageSettings
from tests.helpers import EMS, INTUNE_A, RMS_S_PREMIUM

USERS = int(os.environ.get("SOAK_USERS", "45"))
HR_USERS = max(USERS // 5, 4)  # besides USERS: hire, move, terminate, rehire sequences delivered out of order
# What each step of an HR sequence asks for, and the licenses the latest-issued step implies at the end.
STEPS: tuple[tuple[str, dict[str, str], list[str] | None], ...] = (
    ("hire", {"department": "Sales"}, [INTUNE_A]),
    ("update", {"employeeType": "Contractor"}, [INTUNE_A, RMS_S_PREMIUM]),
    ("terminate", {}, None),
    ("hire", {"department": "Sales"}, [INTUNE_A]),  # the rehire
)
WORKERS = 3
LIMIT_SECONDS = 240 + USERS * 1.2  # each worker's own limit; the test waits a little longer
RANK = {"assigned": 0, "pending": 1, "verified": 2}
COLUMNS = ["PartitionKey", "RowKey", "UpdatedAt", "Outcome", "RequestId"]


@dataclass
class Watch:
    """Status rows seen while the workers run: a row going back in time or from verified to assigned counts."""

    seen: dict[tuple[str, str], tuple[datetime, str, str]] = field(default_factory=dict)
    backwards: list[str] = field(default_factory=list)
    scans: int = 0

    def note(self, row: dict[str, Any]) -> None:
        """Compare one row with what the last scan showed for it."""
        key = (row["PartitionKey"], row["RowKey"])
        now = (row["UpdatedAt"], row["Outcome"], row.get("RequestId", ""))
        before = self.seen.get(key)
        if before is not None:
            same_request = before[2] == now[2]
            if now[0] < before[0] or (same_request and RANK.get(now[1], 9) < RANK.get(before[1], -1)):
                self.backwards.append(f"{key}: {before[1]}@{before[0]} -> {now[1]}@{now[0]}")
        self.seen[key] = now


async def watch_statuses(connection: str, watch: Watch, stop: asyncio.Event) -> None:
    """Scan LicenseStatus every half second until stopped (storage restarts are waited out)."""
    while not stop.is_set():
        try:
            async with TableClient.from_connection_string(connection, "LicenseStatus") as table:
                async for row in table.list_entities(select=COLUMNS):
                    watch.note(row)
            watch.scans += 1
        except Exception:  # the table does not exist yet, or storage is restarting
            pass
        await asyncio.sleep(0.5)


POISON_QUEUES = [
    f"{q}-poison{again}" for q in (LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE) for again in ("", "-poison")
]


async def waiting(storage: Storage, name: str) -> int:
    """Messages on a queue (0 if the queue was never created)."""
    try:
        return (await storage.queue(name).get_queue_properties()).approximate_message_count or 0
    except ResourceNotFoundError:
        return 0


async def until(done: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Wait for a condition, failing loudly at the deadline."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not done():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"no {what} within {seconds:.0f} s")
        await asyncio.sleep(0.1)


async def worker(env: dict[str, str]) -> dict[str, Any]:
    """One `python -m licensing.dev.worker` process; its stats line, or a failure naming what it printed."""
    command = [sys.executable, "-m", "licensing.dev.worker", "--limit-seconds", str(LIMIT_SECONDS)]
    pipe = asyncio.subprocess.PIPE
    process = await asyncio.create_subprocess_exec(*command, cwd=APP_ROOT, env=env, stdout=pipe, stderr=pipe)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=LIMIT_SECONDS + 60)
    except TimeoutError:
        process.kill()
        pytest.fail(f"worker {process.pid} did not finish within {LIMIT_SECONDS + 60:.0f} s")
    lines = out.decode().strip().splitlines()
    assert process.returncode == 0, f"worker failed ({process.returncode}): {lines} {err.decode()[-3000:]}"
    assert lines, f"worker printed nothing: {err.decode()[-3000:]}"
    stats: dict[str, Any] = json.loads(lines[-1])
    return stats


def hr_sequence(upn: str, steps: int, start: datetime) -> list[dict[str, Any]]:
    """The first ``steps`` HR requests of hire, move, terminate, rehire for one user, a minute apart."""
    bodies = []
    for n, (event, attributes, _) in enumerate(STEPS[:steps]):
        body: dict[str, Any] = {
            "user": upn,
            "source": "hr",
            "requestId": f"hr-{upn}-{n}",
            "hrEvent": event,
            "issuedAt": (start + timedelta(minutes=n)).isoformat(),
        }
        if event == "terminate":
            body["action"] = "remove"
        else:
            body["attributes"] = attributes
        bodies.append(body)
    return bodies


@pytest.mark.soak
async def test_three_instances_license_everyone_once(tmp_path: Path) -> None:
    """Three worker processes: all licensable users verified, none lost, poisoned, doubled or going backwards."""
    rng = random.Random(11)  # test data
    azurite = Azurite(location=tmp_path / "azurite").start()
    faults = Faults(throttle_rate=0.10, unavailable_rate=0.03, retry_after=1, slow_rate=0.02, slow_ms=2500, seed=3)
    state = TenantState.default(provisioning_delay=0.5)
    state.skus[EMS].enabled = max(state.skus[EMS].enabled, USERS + HR_USERS + 10)  # every user holds EMS at some point
    watch, stop = Watch(), asyncio.Event()
    try:
        async with EmulatedTenant(state=state, faults=faults) as tenant:
            env = {
                **os.environ,
                **local_settings(azurite.connection_string, tenant.base_url),
                "LICENSING_GRAPH_TIMEOUT_SECONDS": "1.5",
                "PYTHONPATH": str(APP_ROOT),
            }
            upns = [f"scale{i:05d}@contoso.onmicrosoft.com" for i in range(USERS)]
            users = [state.add_user(upn, upn, usage_location="US", department="Sales") for upn in upns]
            bodies = [
                {"user": u.user_principal_name, "source": "hr", "requestId": f"scale-{i}"} for i, u in enumerate(users)
            ]
            start = datetime.now(UTC) - timedelta(hours=1)
            hr_upns = [f"hr{i:05d}@contoso.onmicrosoft.com" for i in range(HR_USERS)]
            hr_users = [state.add_user(upn, upn, usage_location="US", department="Sales") for upn in hr_upns]
            lengths = [1 + i % len(STEPS) for i in range(HR_USERS)]  # each sequence stops after 1, 2, 3 or 4 steps
            for upn, steps in zip(hr_upns, lengths, strict=True):
                bodies += hr_sequence(upn, steps, start)
            distinct = len(bodies)
            bodies += rng.sample(bodies, distinct // 10)  # 10 % delivered twice
            rng.shuffle(bodies)  # HR steps arrive in any order: their issuedAt decides
            storage = Storage.from_settings(StorageSettings(connection_string=azurite.connection_string))
            await storage.ensure_created()
            await asyncio.gather(*(storage.send(LICENSE_REQUESTS_QUEUE, b) for b in bodies))
            watcher = asyncio.create_task(watch_statuses(azurite.connection_string, watch, stop))
            workers = [asyncio.create_task(worker(env)) for _ in range(WORKERS)]
            third = USERS // 3
            await until(lambda: state.writes["assignLicense"] >= third, seconds=LIMIT_SECONDS, what="third of writes")
            await asyncio.to_thread(azurite.stop)
            await asyncio.to_thread(azurite.start)
            results = await asyncio.gather(*workers)
            stop.set()
            await watcher

            verified = lost = wrong = 0
            unsettled: list[str] = []
            for user in users:
                row = await storage.status(user.id, "EMS")
                if row is None:
                    lost += 1
                    continue
                verified += row.outcome == "verified"
                if row.outcome != "verified":
                    unsettled.append(f"{user.user_principal_name}: {row.outcome}: {row.reason[:200]}")
                held = [(a.sku_id, a.disabled_plans) for a in user.assignments]
                wrong += held != [(EMS, [INTUNE_A])]
            hr_wrong = []
            for user, steps in zip(hr_users, lengths, strict=True):
                disabled = STEPS[steps - 1][2]
                held = [(a.sku_id, sorted(a.disabled_plans)) for a in user.assignments]
                want = [] if disabled is None else [(EMS, sorted(disabled))]
                row = await storage.status(user.id, "EMS")
                settled = disabled is None or (row is not None and row.outcome == "verified")
                if held != want or not settled:
                    hr_wrong.append(f"{user.user_principal_name} after {steps} step(s): {held}, row {row}")
            poison_poison = [name for name in POISON_QUEUES if await waiting(storage, name)]
            await storage.close()
            poisoned = sum(sum(r["poisoned"].values()) for r in results)
            failed = sum(sum(r["failed"].values()) for r in results)
            writes, needed = state.writes["assignLicense"], distinct  # at most one write per distinct request
            retried = state.faulted.total() + state.slow_answers
            print(
                f"\nscale-out: workers={WORKERS} users={USERS}+{HR_USERS} HR sequences messages={len(bodies)} "
                f"verified={verified} hr-wrong={len(hr_wrong)} "
                f"lost={lost} poisoned={poisoned} backwards={len(watch.backwards)} (over {watch.scans} scans) "
                f"assignLicense={writes} needed={needed} (429/503 {state.faulted.total()}, slow answers "
                f"{state.slow_answers}) failed deliveries={failed} per worker="
                f"{[sum(r['succeeded'].values()) for r in results]}"
            )
            assert (verified, lost, poisoned, wrong) == (USERS, 0, 0, 0), unsettled[:5]
            assert hr_wrong == [], hr_wrong[:5]
            assert watch.backwards == []
            assert poison_poison == []
            assert all(sum(r["succeeded"].values()) > 0 for r in results), "every instance did some of the work"
            assert writes <= needed + retried
    finally:
        stop.set()
        azurite.stop()
