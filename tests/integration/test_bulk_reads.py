"""The sweep's bulk reads through the real msgraph-sdk against the strict emulated tenant: $batch answers matched by
id, expired delta links, Intune devices paged and counted per user, a long Retry-After waited out only within the
sweep's budget."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from licensing.adapters.graph.bulk import BulkReader, DeltaExpired
from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.graph.read_budget import ReadBudget
from licensing.core.drift import DeviceTally
from licensing.core.errors import AccessDenied, TransientError
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.dev.tenant.strict import Strictness
from licensing.settings import Settings
from tests.helpers import hire


@pytest.fixture
async def tenant() -> AsyncIterator[EmulatedTenant]:
    """The tenant as Graph documents it ($batch answers shuffled, 410 for a stale delta link)."""
    async with EmulatedTenant(state=TenantState.default(provisioning_delay=0, strictness=Strictness())) as running:
        yield running


@pytest.fixture
async def reader(tenant: EmulatedTenant) -> AsyncIterator[BulkReader]:
    """A BulkReader over the gateway the app builds from its settings."""
    settings = Settings.from_env({"LICENSING_GRAPH_URL": tenant.base_url, "LICENSING_GRAPH_AUTH": "none"})
    gateway = GraphGateway.from_settings(settings)
    yield BulkReader(gateway)
    await gateway.close()


async def test_batch_answers_come_back_in_request_order_although_graph_shuffles_them(
    reader: BulkReader, tenant: EmulatedTenant
) -> None:
    """20 different users in one $batch answered in a shuffled order: each answer is paired with its own request."""
    users = [hire(tenant, f"batch{i:02d}") for i in range(20)]
    answers = await reader.batch([f"/users/{u.id}?$select=id,userPrincipalName" for u in users])
    assert [body["id"] for _, body in answers] == [u.id for u in users]
    assert tenant.state.strictness.shuffle_batch


@pytest.mark.parametrize("answer", ["410", "syncStateNotFound"])
async def test_a_stale_delta_link_raises_delta_expired(reader: BulkReader, tenant: EmulatedTenant, answer: str) -> None:
    """Both of Graph's answers to an expired token become DeltaExpired, naming the status."""
    tenant.state.strictness.update({"delta_expired": answer})
    link = await reader.latest_delta_link()
    tenant.state.expire_delta_tokens()
    with pytest.raises(DeltaExpired, match="410 resyncrequired" if answer == "410" else "400 syncstatenotfound"):
        async for _ in reader.delta(link):
            pass


async def test_devices_are_paged_and_counted_per_user(reader: BulkReader, tenant: EmulatedTenant) -> None:
    """2,003 devices over three pages of 1,000 (id and userId only); counts per user."""
    many, few = hire(tenant, "many"), hire(tenant, "few")
    tenant.state.add_devices(many.id, 2000)
    tenant.state.add_devices(few.id, 3)
    tally = DeviceTally()
    await reader.devices_per_user(tally)
    assert (tally.count(many.id), tally.count(few.id), tally.devices) == (2000, 3, 2003)
    assert tenant.state.requests["GET /deviceManagement/managedDevices"] == 3


async def test_a_refused_device_list_is_access_denied(reader: BulkReader, tenant: EmulatedTenant) -> None:
    """403 without DeviceManagementManagedDevices.Read.All: AccessDenied, which the sweep reports and carries on."""
    tenant.state.strictness.devices_forbidden = True
    with pytest.raises(AccessDenied):
        await reader.devices_per_user(DeviceTally())


def patient(slept: list[float]) -> ReadBudget:
    """The sweep's budget on a fake clock: waits are recorded and pass at once."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    return ReadBudget(clock=lambda: now[0], sleep=sleep)


async def test_a_long_retry_after_fails_at_once_without_a_budget(reader: BulkReader, tenant: EmulatedTenant) -> None:
    """Retry-After 20 s (above the 10 s cap) on a read outside the sweep: one request, TransientError naming it."""
    tenant.faults.throttle_next, tenant.faults.retry_after = 1, 20
    with pytest.raises(TransientError, match=r"429 .*\(Retry-After 20 s, more than the 0 s left to wait\)"):
        await reader.catalog()
    assert tenant.state.requests["GET /subscribedSkus"] == 1


async def test_a_long_retry_after_is_waited_out_within_a_budget(tenant: EmulatedTenant) -> None:
    """With the sweep's budget the same read waits 20 s once and is sent again; so is a $batch sub-request."""
    settings = Settings.from_env({"LICENSING_GRAPH_URL": tenant.base_url, "LICENSING_GRAPH_AUTH": "none"})
    gateway = GraphGateway.from_settings(settings)
    slept: list[float] = []
    reader = BulkReader(gateway, budget=patient(slept))
    try:
        tenant.faults.throttle_next, tenant.faults.retry_after = 1, 20
        assert (await reader.catalog()).skus
        user = hire(tenant, "waited")
        tenant.faults.throttle_next = 1
        [(status, body)] = await reader.batch([f"/users/{user.id}?$select=id"])
    finally:
        await gateway.close()
    assert (status, body["id"]) == (200, user.id)
    assert slept == [20, 20]
    assert tenant.state.requests["GET /subscribedSkus"] == 2
    assert tenant.state.requests["GET /users/{id}"] == 2
    assert reader.requests == 4  # each try counted: the sweep reports every request it made
