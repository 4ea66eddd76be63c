"""The sweep against a tenant as strict as Graph's documentation: app-only plan states, shuffled $batch answers,
expiring delta links, Intune device counts and plans waiting for an admin. Real Azurite, the real msgraph-sdk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal

import pytest

from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.storage.account import RUNS_TABLE
from licensing.adapters.storage.sweep_store import drift_rows, latest_runs, read_delta_state
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.dev.tenant.generate import generate_tenant
from licensing.dev.tenant.strict import Strictness
from licensing.services.context import Services
from licensing.services.overview import sweep_overview
from licensing.services.sweep import run_sweep
from tests.helpers import app_over

Generated = tuple[Services, EmulatedTenant, dict[str, list[str]]]
INTUNE = {"INTUNE_A", "INTUNE_EDU"}


async def mark_unsettled(services: Services, state: TenantState, user_ids: list[str], **extra: Any) -> None:
    """Status rows as onboarding leaves them after an assignment: pending, with the disabled plans asked for."""
    for user_id in user_ids:
        user = state.users[user_id]
        for held in user.assignments:
            sku = state.skus[held.sku_id]
            disabled = tuple(sorted(p.name for p in sku.plans if p.id in held.disabled_plans))
            upn = user.user_principal_name
            row = StatusRecord(user_id, sku.part_number, upn, "pending", "checking", "r", "hr", disabled_plans=disabled)
            await services.storage.put_status(replace(row, **extra))


@pytest.fixture
async def strict(
    monkeypatch: pytest.MonkeyPatch, azurite: Azurite, request: pytest.FixtureRequest
) -> AsyncIterator[Generated]:
    """400 generated users (40 % drifted), every documented behaviour on; provisioning-error users marked pending."""
    state, expected = generate_tenant(400, drift_fraction=0.4, seed=11, strictness=Strictness())
    env = getattr(request, "param", {})
    async with app_over(state, azurite, monkeypatch, SWEEP_FIX_RATE_PER_MINUTE="600000", **env) as (services, tenant):
        await mark_unsettled(services, state, expected["provisioning-error"])
        yield services, tenant, expected


async def kinds_by_user(services: Services, run_id: str) -> dict[str, set[str]]:
    """The drift kinds each user's SweepDrift rows carry."""
    found: dict[str, set[str]] = {}
    for row in await drift_rows(services.storage, run_id):
        found.setdefault(row["RowKey"].removesuffix("~provisioning"), set()).update(row["Kinds"].split(","))
    return found


async def test_app_only_sweep_finds_every_kind_with_shuffled_batches(strict: Generated) -> None:
    """licenseDetails refused and $batch answers shuffled: each kind is found for exactly its users, via the
    users' assignedPlans + provisionedPlans, matched to the right user by $batch id."""
    services, tenant, expected = strict
    result = await run_sweep(services, mode="report")
    assert (result.read, result.users_seen) == ("full", 400)
    assert {k: result.drift[k] for k in expected} == {k: len(v) for k, v in expected.items()}
    by_user = await kinds_by_user(services, result.run_id)
    for kind, ids in expected.items():
        assert {u for u, kinds in by_user.items() if kind in kinds} == set(ids), kind
    unsettled = len(expected["provisioning-error"])
    assert tenant.state.requests["GET /users/{id}/licenseDetails"] <= 20  # one refused batch, then app-only
    assert tenant.state.requests["GET /users/{id}"] == unsettled


@pytest.mark.parametrize("answer", ["410", "syncStateNotFound"])
async def test_an_expired_delta_link_becomes_a_full_read_in_the_same_run(
    strict: Generated, answer: Literal["410", "syncStateNotFound"]
) -> None:
    """410 Gone (resyncRequired) or 400 syncStateNotFound: this run reads every user, says why, stores a new link."""
    services, tenant, expected = strict
    tenant.state.strictness.delta_expired = answer
    await run_sweep(services, mode="report")
    tenant.state.expire_delta_tokens()
    tenant.state.reset_counters()
    result = await run_sweep(services, mode="report")
    assert (result.read, result.users_seen) == ("full", 400)
    assert result.read_reason == (
        "expired (410 resyncrequired)" if answer == "410" else "expired (400 syncstatenotfound)"
    )
    assert result.drift["missing-license"] == len(expected["missing-license"])
    assert tenant.state.requests["GET /users"] == 1
    [row, _] = await latest_runs(services.storage, 2)
    assert (row["Read"], row["ReadReason"]) == ("full", result.read_reason)
    changed = next(iter(tenant.state.users))
    tenant.state.set_user(changed, {"jobTitle": "Changed"})
    following = await run_sweep(services, mode="report")
    assert (following.read, following.users_seen) == ("delta", 1)


async def test_a_failed_delta_start_still_completes_the_full_read_and_stores_no_link(
    strict: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$deltatoken=latest throttled past the retries: every user is read, the run says so, the next run reads fully."""
    services, tenant, expected = strict
    read_catalog = BulkReader.catalog

    async def then_throttle(reader: BulkReader) -> Any:
        catalog = await read_catalog(reader)
        tenant.faults.throttle_next, tenant.faults.retry_after = 4, 0  # the next call: first try + 3 SDK retries
        return catalog

    monkeypatch.setattr(BulkReader, "catalog", then_throttle)
    result = await run_sweep(services, mode="report")
    assert (result.read, result.users_seen) == ("full", 400)
    assert result.drift["missing-license"] == len(expected["missing-license"])
    [note] = result.notes
    assert note.startswith("no delta link for the next run (Graph refused to start a users delta: 429")
    link, last_full = await read_delta_state(services.storage)
    assert link is None
    assert last_full is not None
    [row] = await latest_runs(services.storage, 1)
    assert json.loads(row["Notes"]) == [note]
    monkeypatch.setattr(BulkReader, "catalog", read_catalog)
    following = await run_sweep(services, mode="report")
    assert (following.read, following.read_reason) == ("full", "no delta link stored")


def intune_licenses(state: TenantState, user_id: str) -> int:
    """The user's licenses with an Intune plan enabled (the spec restated on the tenant's own records)."""
    return sum(
        any(p.name in INTUNE and p.id not in a.disabled_plans for p in state.skus[a.sku_id].plans)
        for a in state.users[user_id].assignments
    )


@pytest.mark.parametrize("strict", [{"LICENSING_DEVICE_LIMIT_CHECK": "true"}], indirect=True)
async def test_device_limit_reports_users_over_fifteen_devices_per_intune_license(strict: Generated) -> None:
    """Devices are counted per user: over 15 x Intune licenses is report-only device-limit drift, in the rows, the
    CSV, the run summary and the status page; exactly at the limit is not."""
    services, tenant, _ = strict
    state = tenant.state
    licensed = [u for u in state.users if intune_licenses(state, u) == 1 and state.users[u].account_enabled]
    unlicensed = [u for u in state.users if intune_licenses(state, u) == 0]
    over, at_limit, without = licensed[0], licensed[1], unlicensed[0]
    state.add_devices(over, 16)
    state.add_devices(at_limit, 15)
    state.add_devices(without, 1)
    result = await run_sweep(services, mode="remediate")
    assert result.devices == 32
    assert result.drift["device-limit"] == 2
    by_user = await kinds_by_user(services, result.run_id)
    assert "device-limit" in by_user[over]
    assert "device-limit" in by_user[without]
    assert "device-limit" not in by_user.get(at_limit, set())
    assert "16 managed devices, 1 Intune license(s)" in result.csv
    assert tenant.state.requests["GET /deviceManagement/managedDevices"] == 1
    [row] = await latest_runs(services.storage, 1)
    overview = sweep_overview(row)
    assert overview is not None
    assert ("device-limit", 2) in overview.drift


@pytest.mark.parametrize("strict", [{"LICENSING_DEVICE_LIMIT_CHECK": "true"}], indirect=True)
async def test_a_refused_device_list_is_reported_and_the_sweep_carries_on(strict: Generated) -> None:
    """403 on managedDevices (no DeviceManagementManagedDevices.Read.All): the run says so and finishes."""
    services, tenant, expected = strict
    tenant.state.strictness.devices_forbidden = True
    result = await run_sweep(services, mode="report")
    assert (result.read, result.users_seen, result.devices) == ("full", 400, None)
    assert result.drift["missing-license"] == len(expected["missing-license"])
    [note] = result.notes
    assert "DeviceManagementManagedDevices.Read.All" in note


async def test_plans_waiting_for_an_admin_are_needs_admin_not_stuck(strict: Generated) -> None:
    """PendingActivation is needs-admin naming the fix, never stuck; PendingInput past the deadline is stuck."""
    services, tenant, expected = strict
    state = tenant.state
    compliant = set(state.users) - {u for ids in expected.values() for u in ids}
    waiting, settling = sorted(u for u in compliant if state.users[u].assignments)[:2]
    state.require_activation("RMS_S_PREMIUM")
    holders = {u.id for u in state.users_holding_plan("RMS_S_PREMIUM")}
    assert waiting in holders
    long_ago = services.clock() - timedelta(days=3)
    await mark_unsettled(services, state, [waiting, settling], updated_at=long_ago)
    state.force_status(settling, "EXCHANGE_S_FOUNDATION", "PendingInput")
    result = await run_sweep(services, mode="report")
    by_user = await kinds_by_user(services, result.run_id)
    assert "needs-admin" in by_user[waiting]
    assert "provisioning-stuck" not in by_user[waiting]
    assert "RMS_S_PREMIUM is PendingActivation: an admin must activate" in result.csv
    assert by_user[settling] >= {"provisioning-stuck"}
    runs = [e async for e in services.storage.table(RUNS_TABLE).query_entities("PartitionKey eq 'runs'")]
    assert json.loads(runs[0]["Drift"])["needs-admin"] >= 1
