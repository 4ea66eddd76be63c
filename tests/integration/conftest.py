"""Fixtures for the emulated-tenant tests; each test module defines its own ``tenant``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory

from licensing.dev.tenant import EmulatedTenant
from tests.integration.support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture
async def http(tenant: EmulatedTenant) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the tenant, for exact status codes and JSON."""
    async with httpx.AsyncClient(base_url=tenant.base_url) as client:
        yield client


@pytest.fixture
async def graph(tenant: EmulatedTenant) -> AsyncIterator[GraphServiceClient]:
    """The real msgraph-sdk pointed at the tenant."""
    client = GraphClientFactory.create_with_default_middleware()
    adapter = GraphRequestAdapter(AnonymousAuthenticationProvider(), client=client)
    adapter.base_url = tenant.base_url
    yield GraphServiceClient(request_adapter=adapter)
    await client.aclose()
