"""The nightly sweep under throttling and outages (issue #12): a changed user whose read fails is not skipped for good,
a long Retry-After is waited out within the run's budget, and a run that cannot finish leaves a failed SweepRuns row
with the reason and the delta cursor where it was. Real Azurite, the real msgraph-sdk, the strict emulated tenant."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.graph.read_budget import ReadBudget
from licensing.adapters.storage.sweep_store import latest_runs, read_delta_state
from licensing.core.errors import LicensingError
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

USERS = 60
LONG = 300  # a Retry-After no sweep can wait out: more than the whole function timeout
Generated = tuple[Services, EmulatedTenant, dict[str, list[str]]]


@pytest.fixture
async def generated(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> AsyncIterator[Generated]:
    """60 generated users as Graph documents them (40 % drifted), provisioning-error users marked pending."""
    state, expected = generate_tenant(USERS, drift_fraction=0.4, seed=11, strictness=Strictness())
    async with app_over(state, azurite, monkeypatch, SWEEP_FIX_RATE_PER_MINUTE="600000") as (services, tenant):
        await mark_unsettled(services, state, expected["provisioning-error"])
        yield services, tenant, expected


class Outage:
    """$batch sub-requests about one user answered 429 or 503 (Retry-After ``retry_after``) while ``on``; with
    ``times``, only that many."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, user_id: str, status: int, retry_after: int = LONG, times: int = 0
    ) -> None:
        self.user_id, self.status, self.retry_after, self.times = user_id, status, retry_after, times
        self.on = True
        self.answered: list[int] = []  # every status the user's sub-requests got, outage or not
        monkeypatch.setattr("licensing.dev.tenant.batch.dispatch", self.dispatch)

    async def dispatch(self, ctx: Context, sub: GraphRequest) -> GraphResponse:
        """The tenant's own dispatch, with its own faults switched on for this user's sub-requests."""
        if not (self.on and self.user_id in sub.path):
            response = await dispatch(ctx, sub)
        else:
            ctx.faults.retry_after = self.retry_after
            ctx.faults.throttle_next, ctx.faults.unavailable_rate = (1, 0.0) if self.status == 429 else (0, 1.0)
            try:
                response = await dispatch(ctx, sub)
            finally:
                ctx.faults.throttle_next, ctx.faults.unavailable_rate = 0, 0.0
            self.times -= 1
            self.on = self.times != 0
        if self.user_id in sub.path:
            self.answered.append(response.status)
        return response


def fake_time() -> tuple[ReadBudget, list[float]]:
    """A budget on a fake clock: every wait is recorded and passes at once."""
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    return ReadBudget(clock=lambda: now[0], sleep=sleep), slept


@pytest.mark.parametrize("status", [429, 503])
async def test_a_changed_user_whose_read_fails_is_assessed_by_the_next_delta_run(
    generated: Generated, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """A new hire's $batch read answered 429/503 (Retry-After 300 s) in a delta run: the run says so and keeps the
    stored deltaLink; the next, clean delta run reads the hire and finds its missing license."""
    services, tenant, _ = generated
    await run_sweep(services, mode="report")
    user = hire(tenant, "unseen")
    before = await read_delta_state(services.storage)
    outage = Outage(monkeypatch, user.id, status)
    failed = await run_sweep(services, mode="report")
    assert (failed.read, failed.users_seen, failed.drift["missing-license"]) == ("delta", 0, 0)
    assert outage.answered == [status]
    [note] = failed.notes
    assert note == (
        f"1 changed user(s) not read ({status} x1): the deltaLink was kept, so the next run reads these changes again"
    )
    assert await read_delta_state(services.storage) == before
    [row, _] = await latest_runs(services.storage, 2)
    assert json.loads(row["Notes"]) == [note]
    outage.on = False
    following = await run_sweep(services, mode="report")
    assert (following.read, following.users_seen, following.drift["missing-license"]) == ("delta", 1, 1)
    assert following.notes == []
    assert outage.answered == [status, 200]


async def test_unanswered_provisioning_reads_are_noted_and_checked_the_next_night(
    generated: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One unsettled user's plan read stays throttled: the run names the count and keeps their status rows; the next
    run checks them and finds their provisioning error."""
    services, _, expected = generated
    unsettled = expected["provisioning-error"]
    outage = Outage(monkeypatch, unsettled[0], 429)
    first = await run_sweep(services, mode="report")
    assert first.drift["provisioning-error"] == len(unsettled) - 1
    [note] = first.notes
    assert note == (
        "provisioning not checked for 1 user(s) Graph did not answer (429 x1): their LicenseStatus rows stay as they "
        "are, so the next run checks them again"
    )
    outage.on = False
    second = await run_sweep(services, mode="report")
    assert second.drift["provisioning-error"] == len(unsettled)
    assert second.notes == []


@pytest.mark.parametrize("where", ["catalog", "users page"])
async def test_a_long_retry_after_is_waited_out_within_the_budget(
    generated: Generated, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """429 with Retry-After 20 s (above the 10 s the SDK waits) on the catalog or a users page: the sweep waits it
    out (on a fake clock), reads everyone and records a completed run saying it waited."""
    services, tenant, expected = generated
    if where == "catalog":
        tenant.faults.throttle_next, tenant.faults.retry_after = 1, 20
    else:
        read_catalog = BulkReader.catalog

        async def then_throttle(reader: BulkReader) -> Any:
            catalog = await read_catalog(reader)
            tenant.faults.throttle_next, tenant.faults.retry_after = 2, 20  # the delta start, then the first page
            return catalog

        monkeypatch.setattr(BulkReader, "catalog", then_throttle)
    budget, slept = fake_time()
    result = await run_sweep(services, mode="report", budget=budget)
    waits = 1 if where == "catalog" else 2
    assert slept == [20.0] * waits
    assert (result.outcome, result.read, result.users_seen) == ("completed", "full", USERS)
    assert result.drift["missing-license"] == len(expected["missing-license"])
    assert result.notes == [f"waited out Graph's Retry-After {waits} time(s), the longest 20 s"]
    [row] = await latest_runs(services.storage, 1)
    assert row["Outcome"] == "completed"
    assert (await read_delta_state(services.storage))[0] is not None


async def test_a_long_retry_after_in_a_batch_is_waited_out_and_the_user_assessed(
    generated: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed user's $batch sub-request answered 429 with Retry-After 20 s: waited out, then read and assessed."""
    services, tenant, _ = generated
    await run_sweep(services, mode="report")
    user = hire(tenant, "patient")
    outage = Outage(monkeypatch, user.id, 429, retry_after=20, times=1)
    budget, slept = fake_time()
    result = await run_sweep(services, mode="report", budget=budget)
    assert slept == [20.0]
    assert outage.answered == [429, 200]
    assert (result.read, result.users_seen, result.drift["missing-license"]) == ("delta", 1, 1)


@pytest.mark.parametrize("where", ["catalog", "delta page"])
async def test_a_retry_after_past_the_budget_leaves_a_failed_run_and_the_cursor(
    generated: Generated, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Retry-After 300 s cannot fit in the function timeout: the run fails with a SweepRuns row (outcome failed, the
    reason) and leaves the delta state as it was, so the next run still sees the change; no waiting at all."""
    services, tenant, _ = generated
    await run_sweep(services, mode="report")
    before = await read_delta_state(services.storage)
    user = hire(tenant, "later")
    read_catalog = BulkReader.catalog

    async def then_throttle(reader: BulkReader) -> Any:
        catalog = await read_catalog(reader)
        tenant.faults.throttle_next, tenant.faults.retry_after = 1, LONG  # the delta page
        return catalog

    if where == "catalog":
        tenant.faults.throttle_next, tenant.faults.retry_after = 1, LONG
    else:
        monkeypatch.setattr(BulkReader, "catalog", then_throttle)
    with pytest.raises(LicensingError) as raised:
        await run_sweep(services, mode="report")
    [row, _] = await latest_runs(services.storage, 2)
    assert row["Outcome"] == "failed"
    assert row["Failure"].startswith("Graph refused to read")
    assert "429" in row["Failure"]
    assert "Retry-After 300 s, more than the" in row["Failure"]
    assert row["Ended"] is not None
    assert raised.value.message.endswith(f"{row['Failure']} (recorded in SweepRuns; the delta state is kept)")
    assert await read_delta_state(services.storage) == before
    monkeypatch.setattr(BulkReader, "catalog", read_catalog)
    following = await run_sweep(services, mode="report")
    assert (following.read, following.users_seen, following.drift["missing-license"]) == ("delta", 1, 1)
    assert user.id in following.csv


async def test_a_run_out_of_time_leaves_a_failed_row_before_the_function_timeout(generated: Generated) -> None:
    """Graph answering slowly: the run is cut off at the budget's run_seconds (270 s of the 300 s function timeout;
    0.3 s here) and records why, rather than being killed by the host without a row."""
    services, tenant, _ = generated
    tenant.faults.latency_ms = 200
    with pytest.raises(LicensingError, match="out of time"):
        await run_sweep(services, mode="report", budget=ReadBudget(run_seconds=0.3))
    [row] = await latest_runs(services.storage, 1)
    assert row["Outcome"] == "failed"
    assert row["Failure"] == "out of time: not finished within 0.3 s (the function timeout less a margin)"
    assert (await read_delta_state(services.storage)) == (None, None)
