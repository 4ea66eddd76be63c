"""The status page's HTTP headers: a CSP that forbids framing, and no copy kept anywhere (it lists UPNs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

import function_app
from licensing.core.errors import TransientError
from licensing.core.model import Catalog
from licensing.dev.localhttp import LocalHttp
from licensing.services.context import Services


@pytest.fixture
async def http(services: Services) -> AsyncIterator[LocalHttp]:
    """The registered HTTP functions on loopback, over empty tables."""
    async with LocalHttp(function_app.app) as running:
        yield running


def secure(headers: Mapping[str, str]) -> None:
    """The headers every answer of the page carries, whatever its status."""
    lowered = {k.lower(): v for k, v in headers.items()}
    assert "frame-ancestors 'none'" in lowered["content-security-policy"]
    assert "default-src 'none'" in lowered["content-security-policy"]
    assert lowered["cache-control"] == "no-store"
    assert lowered["x-content-type-options"] == "nosniff"
    assert lowered["x-frame-options"] == "DENY"
    assert lowered["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("query", ["", "&format=json", "&format=xml"])
async def test_every_answer_of_the_page_forbids_framing_and_caching(http: LocalHttp, query: str) -> None:
    """HTML, JSON and the 400 for an unknown format all carry the security headers."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{http.base_url}/status?code=local-key{query.replace('?', '&')}") as response,
    ):
        assert response.status in {200, 400}
        secure(response.headers)


async def test_a_503_of_the_page_carries_them_too(
    http: LocalHttp, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trouble reading Graph still answers with the same headers."""

    async def unavailable(*, fresh: bool = False) -> Catalog:
        raise TransientError("Graph is throttling subscribedSkus")

    monkeypatch.setattr(services.graph, "catalog", unavailable)
    async with aiohttp.ClientSession() as session, session.get(f"{http.base_url}/status?code=local-key") as response:
        assert response.status == 503
        secure(response.headers)
