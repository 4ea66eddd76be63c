"""One retry owner per kind of call, through the real msgraph-sdk against the strict emulated tenant: identity writes
are never retried in-process (the queue redelivers them through the write budget), reads are, within a bounded wait."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.graph.gateway import GraphGateway
from licensing.core.errors import TransientError
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.dev.tenant.strict import Strictness
from licensing.settings import GRAPH_RETRY_WAIT_CAP, Settings
from tests.helpers import ASSIGN, EMS, hire


@pytest.fixture
async def tenant() -> AsyncIterator[EmulatedTenant]:
    """The tenant as Graph documents it."""
    async with EmulatedTenant(state=TenantState.default(provisioning_delay=0, strictness=Strictness())) as running:
        yield running


@pytest.fixture
async def graph(tenant: EmulatedTenant) -> AsyncIterator[GraphGateway]:
    """The gateway the app builds from its settings (no retry base delay, so tests do not wait)."""
    settings = Settings.from_env(
        {
            "LICENSING_GRAPH_URL": tenant.base_url,
            "LICENSING_GRAPH_AUTH": "none",
            "LICENSING_GRAPH_RETRY_DELAY_SECONDS": "0",
        }
    )
    gateway = GraphGateway.from_settings(settings)
    yield gateway
    await gateway.close()


async def test_a_throttled_assign_license_is_not_retried_in_process(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """429 on assignLicense: one request reaches the tenant, and it surfaces as TransientError for the queue."""
    user = hire(tenant, "ada")
    tenant.faults.throttle_next, tenant.faults.retry_after = 1, 0
    with pytest.raises(TransientError, match="429"):
        await graph.assign(user.id, [(EMS, set())], [])
    assert tenant.state.requests[ASSIGN] == 1
    assert tenant.state.users[user.id].assignments == []


async def test_a_throttled_usage_location_patch_is_not_retried_in_process(
    graph: GraphGateway, tenant: EmulatedTenant
) -> None:
    """503 on PATCH /users/{id}: one request, TransientError; the location is unchanged."""
    user = hire(tenant, "bob", location=None)
    tenant.faults.unavailable_rate = 1.0
    with pytest.raises(TransientError, match="503"):
        await graph.set_usage_location(user.id, "DE")
    assert tenant.state.requests["PATCH /users/{id}"] == 1


async def test_reads_and_batches_are_still_retried(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """A throttled GET and a throttled $batch envelope are retried by the SDK and succeed."""
    user = hire(tenant, "cy")
    tenant.faults.throttle_next, tenant.faults.retry_after = 2, 0
    assert (await graph.get_user(user.id)).id == user.id
    assert tenant.state.requests["GET /users/{id}"] == 3
    tenant.faults.throttle_next = 1
    [(status, body)] = await BulkReader(graph).batch([f"/users/{user.id}?$select=id"])
    assert (status, body["id"]) == (200, user.id)
    assert tenant.state.requests["POST /$batch"] == 2


async def test_a_read_is_not_retried_past_the_wait_cap(graph: GraphGateway, tenant: EmulatedTenant) -> None:
    """Retry-After beyond the cap: the read fails at once as TransientError instead of sleeping in the worker."""
    tenant.faults.throttle_next, tenant.faults.retry_after = 1, int(GRAPH_RETRY_WAIT_CAP) + 5
    with pytest.raises(TransientError, match="429"):
        await graph.catalog(fresh=True)
    assert tenant.state.requests["GET /subscribedSkus"] == 1
