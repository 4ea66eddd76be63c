"""The nightly sweep against a generated tenant (every drift kind), real Azurite, the real msgraph-sdk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from azure.functions.timer import TimerRequest

import function_app
from licensing.adapters.storage.account import RUNS_TABLE
from licensing.adapters.storage.sweep_store import REPORT_CONTAINER, acquire_lease, drift_rows
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost, user_function
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.generate import generate_tenant
from licensing.services.context import Services
from licensing.services.sweep import run_sweep
from tests.helpers import ASSIGN, app_over

FIXABLE = {"missing-license", "wrong-disabled-plans", "usage-location-missing", "reclaim", "companion-missing",
           "extra-license"}  # fmt: skip
REPORT_ONLY = {"group-assigned", "provisioning-error"}


@pytest.fixture
async def generated(
    monkeypatch: pytest.MonkeyPatch, azurite: Azurite
) -> AsyncIterator[tuple[Services, EmulatedTenant, dict[str, list[str]]]]:
    """400 generated users, 40 % drifted across every kind, provisioning-error users marked pending."""
    state, expected = generate_tenant(400, drift_fraction=0.4, seed=11)
    async with app_over(state, azurite, monkeypatch, SWEEP_FIX_RATE_PER_MINUTE="600000") as (services, tenant):
        for user_id in expected["provisioning-error"]:  # the app assigned these; verification is unsettled
            user = state.users[user_id]
            for held in user.assignments:
                sku = state.skus[held.sku_id]
                disabled = tuple(sorted(p.name for p in sku.plans if p.id in held.disabled_plans))
                await services.storage.put_status(StatusRecord(
                    user_id, sku.part_number, user.user_principal_name, "pending", "checking", "r", "hr",
                    disabled_plans=disabled,
                ))  # fmt: skip
        yield services, tenant, expected


async def test_report_mode_finds_every_kind_and_changes_nothing(
    generated: tuple[Services, EmulatedTenant, dict[str, list[str]]],
) -> None:
    """Each generated drift kind is found for exactly its users; no Graph write; a run row, drift rows, a CSV."""
    services, tenant, expected = generated
    result = await run_sweep(services, mode="report")
    assert result.read == "full"
    assert result.users_seen == 400
    for kind, ids in expected.items():
        assert result.drift[kind] == len(ids), kind
    assert sum(tenant.state.writes.values()) == 0
    assert tenant.state.requests[ASSIGN] == 0
    assert result.fixes_enqueued == 0
    rows = await drift_rows(services.storage, result.run_id)
    assert len({row["PartitionKey"] for row in rows}) == 16
    by_user: dict[str, str] = {}
    for row in rows:
        user_id = row["RowKey"].removesuffix("~provisioning")
        by_user[user_id] = by_user.get(user_id, "") + row["Kinds"]
    for kind, ids in expected.items():
        assert all(kind in by_user[user_id] for user_id in ids), kind
    [run] = [e async for e in services.storage.table(RUNS_TABLE).query_entities("PartitionKey eq 'runs'")]
    assert run["UsersSeen"] == 400
    assert json.loads(run["Drift"]) == {k: len(v) for k, v in expected.items() if v}
    assert services.storage.blobs is not None
    blob = services.storage.blobs.get_blob_client(REPORT_CONTAINER, f"{result.run_id}.csv")
    csv_text = (await (await blob.download_blob()).readall()).decode()
    assert csv_text.count("\n") == len(rows) + 1


async def test_graph_requests_stay_within_pages_plus_batches(
    generated: tuple[Services, EmulatedTenant, dict[str, list[str]]],
) -> None:
    """One page of 999 users, one $batch for the unsettled users (plus the one licenseDetails batch Graph refuses to
    an app, if it does), a delta start and the catalog: nothing per user."""
    services, tenant, expected = generated
    refused = tenant.state.strictness.license_details_app_only_refused
    result = await run_sweep(services, mode="report")
    pages = -(-400 // 999)
    unsettled = len(expected["provisioning-error"])
    batches = -(-unsettled // 20) + (1 if refused else 0)
    assert tenant.state.requests["GET /users"] == pages
    assert tenant.state.requests["POST /$batch"] == batches
    assert result.graph_requests <= pages + batches + 3
    # in $batch: licenseDetails per unsettled user, or (app-only) one refused batch and then the users themselves
    assert tenant.state.requests["GET /users/{id}"] == (unsettled if refused else 0)
    assert tenant.state.requests["GET /users/{id}/licenseDetails"] == (min(unsettled, 20) if refused else unsettled)


async def test_remediate_mode_converges_and_leaves_group_licenses_alone(
    generated: tuple[Services, EmulatedTenant, dict[str, list[str]]], azurite: Azurite
) -> None:
    """Fixes are queued, the onboard function applies them, and a second full sweep finds only report-only kinds."""
    services, tenant, expected = generated
    grouped = {uid: [(a.sku_id, a.assigned_by_group) for a in tenant.state.users[uid].assignments]
               for uid in expected["group-assigned"]}  # fmt: skip
    first = await run_sweep(services, mode="remediate")
    assert first.fixes_enqueued == sum(len(expected[k]) for k in FIXABLE)
    host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=0, poll_interval=0.05)
    try:
        await host.run_until_idle(limit_seconds=120)
    finally:
        await host.close()
    assert host.stats.poisoned == {}
    second = await run_sweep(services, mode="report", force_full=True)
    assert set(second.drift) <= REPORT_ONLY, second.drift
    assert second.drift["group-assigned"] == len(expected["group-assigned"])
    for uid, before in grouped.items():
        assert [(a.sku_id, a.assigned_by_group) for a in tenant.state.users[uid].assignments] == before


async def test_second_run_reads_only_the_changes(
    generated: tuple[Services, EmulatedTenant, dict[str, list[str]]],
) -> None:
    """After a full read, the next run follows the deltaLink: three changed users, no list pages."""
    services, tenant, _ = generated
    await run_sweep(services, mode="report")
    changed = list(tenant.state.users.values())[:3]
    for user in changed:
        tenant.state.set_user(user.id, {"jobTitle": "Changed"})
    tenant.state.reset_counters()
    result = await run_sweep(services, mode="report")
    assert result.read == "delta"
    assert result.users_seen == 3
    assert tenant.state.requests["GET /users"] == 0
    assert tenant.state.requests["GET /users/delta"] >= 1


async def test_a_second_sweep_while_one_runs_does_nothing(
    generated: tuple[Services, EmulatedTenant, dict[str, list[str]]],
) -> None:
    """Only one run at a time: with the lease held, a sweep returns skipped without reading Graph."""
    services, tenant, _ = generated
    assert await acquire_lease(services.storage, run_id="other", now=datetime.now(UTC))
    tenant.state.reset_counters()
    result = await run_sweep(services, mode="report")
    assert result.read == "skipped"
    assert tenant.state.requests["GET /users"] == 0


async def test_timer_function_runs_the_sweep(generated: tuple[Services, EmulatedTenant, dict[str, list[str]]]) -> None:
    """The registered timer function, called with a real TimerRequest, records a run; its schedule is a setting."""
    services, _, _ = generated
    fn = next(f for f in function_app_functions() if f.get_function_name() == "sweep")
    trigger = fn.get_trigger().get_dict_repr()
    assert (trigger["schedule"], trigger["useMonitor"], trigger["runOnStartup"]) == ("%SWEEP_SCHEDULE%", True, False)
    await user_function(function_app.app, "sweep")(TimerRequest(past_due=False))
    runs = [e async for e in services.storage.table(RUNS_TABLE).query_entities("PartitionKey eq 'runs'")]
    assert len(runs) == 1
    assert runs[0]["UsersSeen"] == 400


def function_app_functions() -> list:  # type: ignore[type-arg]
    from licensing.dev.localhost import indexed_functions  # noqa: PLC0415

    return indexed_functions(function_app.app)


async def test_full_read_pages_through_several_pages(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> None:
    """2,500 users: three pages of at most 999 via @odata.nextLink, every user seen once."""
    state, _ = generate_tenant(2500, drift_fraction=0.0, seed=3)
    async with app_over(state, azurite, monkeypatch) as (services, tenant):
        result = await run_sweep(services, mode="report")
    assert (result.users_seen, result.users_drifted) == (2500, 0)
    assert tenant.state.requests["GET /users"] == 3


async def test_remediation_fixes_are_spaced_by_the_rate_setting(
    generated: tuple[Services, EmulatedTenant, dict[str, list[str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 60 fixes a minute the n-th fix is queued invisible for n seconds, so Graph sees a steady trickle."""
    from dataclasses import replace  # noqa: PLC0415

    services, _, expected = generated
    services.settings = replace(services.settings, sweep_fix_rate_per_minute=60)
    delays: list[int] = []
    real_send = services.storage.send

    async def recording_send(queue: str, payload: dict[str, object], *, delay_seconds: int = 0) -> None:
        delays.append(delay_seconds)
        await real_send(queue, payload, delay_seconds=delay_seconds)

    monkeypatch.setattr(services.storage, "send", recording_send)
    result = await run_sweep(services, mode="remediate")
    assert result.fixes_enqueued == sum(len(v) for k, v in expected.items() if k in FIXABLE)
    assert sorted(delays) == list(range(result.fixes_enqueued))
    queue = services.storage.queue("license-requests")
    assert (await queue.get_queue_properties()).approximate_message_count == result.fixes_enqueued
    [first] = [m async for m in queue.receive_messages(messages_per_page=1, visibility_timeout=60)][:1]
    message = json.loads(first.content)
    assert (message["source"], message["converge"]) == ("sweep", True)
