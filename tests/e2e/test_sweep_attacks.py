"""The sweep attacked through what it reads back from storage (issue #12): a deltaLink planted in SweepRuns, status
row keys shaped like URLs, and a preview (--dry-run) that must not hide drift from the next real run. Real Azurite,
the real msgraph-sdk signed in with a fake token that a second loopback server would record if it ever got it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from licensing.adapters.storage.sweep_store import latest_runs, read_delta_state, save_delta_state
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.generate import generate_tenant
from licensing.dev.tenant.graph_api import dispatch
from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse
from licensing.dev.tenant.strict import Strictness
from licensing.services.context import Services
from licensing.services.sweep import run_sweep
from tests.e2e.test_sweep_strict import mark_unsettled
from tests.helpers import app_over, hire
from tests.trap import Trap, sign_in_with_fake_token

USERS = 120
Swept = tuple[Services, EmulatedTenant, dict[str, list[str]], Trap]
BAD_KEYS = ("x/../../users?$filter=", "a#b", "c?d", "ada@contoso.com/licenseDetails")


@pytest.fixture
async def swept(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> AsyncIterator[Swept]:
    """120 generated users as Graph documents them, the app signed in with a fake token, and a trap on another
    loopback port; SWEEP_MODE=remediate, so only --dry-run keeps a run to reporting."""
    state, expected = generate_tenant(USERS, drift_fraction=0.4, seed=11, strictness=Strictness())
    sign_in_with_fake_token(monkeypatch)
    env = {"LICENSING_GRAPH_AUTH": "default", "SWEEP_MODE": "remediate", "SWEEP_FIX_RATE_PER_MINUTE": "600000"}
    async with Trap() as trap, app_over(state, azurite, monkeypatch, **env) as (services, tenant):
        yield services, tenant, expected, trap


async def test_a_planted_delta_link_gets_no_token_and_the_sweep_reads_everyone(swept: Swept) -> None:
    """A deltaLink to another port written into SweepRuns: nothing is sent there; the run reads every user, says
    why and names the host, and stores a fresh link from Graph that the next run follows."""
    services, tenant, _, trap = swept
    await run_sweep(services, mode="report")
    _, last_full = await read_delta_state(services.storage)
    planted = f"{trap.base_url}/users/delta?$deltatoken=planted"
    await save_delta_state(services.storage, delta_link=planted, full_at=last_full)
    result = await run_sweep(services, mode="report")
    assert trap.seen == []
    assert (result.read, result.users_seen) == ("full", USERS)
    assert result.read_reason == "delta link refused: not below LICENSING_GRAPH_URL"
    [note] = result.notes
    assert f"the stored users deltaLink to http://127.0.0.1:{trap.port}:" in note
    link, _ = await read_delta_state(services.storage)
    assert link is not None
    assert link.startswith(f"{tenant.base_url}/users/delta")
    hire(tenant, "after")
    following = await run_sweep(services, mode="report")
    assert (following.read, following.users_seen) == ("delta", 1)
    assert trap.seen == []


async def test_a_dry_run_leaves_the_drift_for_the_next_real_run(swept: Swept) -> None:
    """--dry-run (run_sweep(dry_run=True)) reports the new hire but keeps the stored deltaLink, the last full read's
    time and the SweepRuns history as they were: the next real run still sees the hire, and queues its fix."""
    services, tenant, _, _ = swept
    await run_sweep(services)
    before = await read_delta_state(services.storage)
    hire(tenant, "previewed")
    preview = await run_sweep(services, dry_run=True)
    assert (preview.mode, preview.read, preview.users_seen, preview.dry_run) == ("report", "delta", 1, True)
    assert preview.drift["missing-license"] == 1
    assert preview.fixes_enqueued == 0
    assert preview.summary()["dryRun"] is True
    assert await read_delta_state(services.storage) == before
    assert len(await latest_runs(services.storage)) == 1
    real = await run_sweep(services)
    assert (real.mode, real.read, real.users_seen) == ("remediate", "delta", 1)
    assert real.drift["missing-license"] == 1
    assert real.fixes_enqueued == 1
    assert len(await latest_runs(services.storage)) == 2


async def test_status_row_keys_that_are_not_users_never_shape_a_batch_request(
    swept: Swept, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unsettled LicenseStatus rows keyed like URLs ("x/../../users?$filter=", "#", "?"): the $batch sub-requests the
    tenant receives address only real users' object ids; the run completes and names the refused keys."""
    services, tenant, expected, _ = swept
    unsettled = expected["provisioning-error"]
    await mark_unsettled(services, tenant.state, unsettled)
    for key in BAD_KEYS:
        await services.storage.put_status(StatusRecord(key, "EMS", "", "pending", "checking", "r", "hr"))
    received: list[tuple[str, str, dict[str, str]]] = []

    async def recording(ctx: Context, sub: GraphRequest) -> GraphResponse:
        received.append((sub.method, sub.path, dict(sub.query)))
        return await dispatch(ctx, sub)

    monkeypatch.setattr("licensing.dev.tenant.batch.dispatch", recording)  # each sub-request, as the tenant reads it
    result = await run_sweep(services, mode="report")
    assert (result.read, result.users_seen) == ("full", USERS)
    assert result.drift["provisioning-error"] == len(unsettled)
    assert received
    shapes = {re.sub(r"^/users/[0-9a-f-]{36}", "/users/{id}", path) for _, path, _ in received}
    assert shapes <= {"/users/{id}", "/users/{id}/licenseDetails"}, shapes
    assert {path.split("/")[2] for _, path, _ in received} == set(unsettled)
    assert all(set(query) == {"$select"} for _, _, query in received)
    [note] = result.notes
    assert note.startswith(f"provisioning not checked for {len(BAD_KEYS)} LicenseStatus row key(s)")
    assert "('a#b', 'ada@contoso.com/licenseDetails', 'c?d', ...)" in note  # sorted, the first three shown
