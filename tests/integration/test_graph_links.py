"""The Graph token goes to the Graph host only: links in Graph's answers (nextLink, deltaLink, a redirect) that point
at another host are refused before anything is sent there. Real msgraph-sdk and the app's own client, signed in
with a fake credential whose token a second loopback server (the trap) would record if it ever saw it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation

from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.graph.client import ForeignLink
from licensing.adapters.graph.gateway import RAW_ERRORS, GraphGateway
from licensing.core.drift import DeviceTally
from licensing.settings import Settings
from tests.trap import TOKEN, Trap, sign_in_with_fake_token

USER = {"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "userPrincipalName": "ada@contoso.com"}


class StubGraph(Trap):
    """A "Graph" whose pages link to the trap: every answer is ``pages[path]`` (a redirect for ``redirects``)."""

    def __init__(self, trap: Trap) -> None:
        super().__init__()
        away = f"{trap.base_url}/users?$skiptoken=stolen"
        self.pages: dict[str, dict[str, Any]] = {
            "/v1.0/users": {"value": [USER], "@odata.nextLink": away},
            "/v1.0/users/delta": {"value": [USER], "@odata.nextLink": away},
            "/v1.0/deviceManagement/managedDevices": {"value": [], "@odata.nextLink": away},
        }
        self.redirects = {"/v1.0/subscribedSkus": f"{trap.base_url}/subscribedSkus"}

    async def _record(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path_qs, request.headers.get("Authorization")))
        if request.path in self.redirects:
            raise web.HTTPFound(self.redirects[request.path])
        return web.json_response(self.pages.get(request.path, {"value": []}))


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    """The host that must hear nothing."""
    async with Trap() as running:
        yield running


@pytest.fixture
async def graph(trap: Trap) -> AsyncIterator[StubGraph]:
    """The configured Graph host (another loopback port)."""
    async with StubGraph(trap) as running:
        yield running


@pytest.fixture
async def reader(graph: StubGraph, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BulkReader]:
    """The app's own gateway (LICENSING_GRAPH_AUTH=default, a fake token) over the stub Graph."""
    sign_in_with_fake_token(monkeypatch)
    env = {"LICENSING_GRAPH_URL": graph.base_url, "LICENSING_GRAPH_AUTH": "default"}
    gateway = GraphGateway.from_settings(Settings.from_env(env | {"LICENSING_GRAPH_RETRY_DELAY_SECONDS": "0"}))
    yield BulkReader(gateway)
    await gateway.close()


async def read_all(pages: AsyncIterable[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Every page of a paged read."""
    return [page async for page in pages]


def refused(what: str, trap: Trap) -> str:
    """The start of ForeignLink's message for ``what`` pointing at the trap, as a regex."""
    return re.escape(f"{what} to http://127.0.0.1:{trap.port}:")


def tokens_sent(server: Trap) -> set[str | None]:
    """The Authorization headers a server received."""
    return {auth for _, _, auth in server.seen}


async def test_a_users_next_link_to_another_host_is_refused(reader: BulkReader, graph: StubGraph, trap: Trap) -> None:
    """The first page is read with the token; its nextLink to another port raises ForeignLink; nothing reaches it."""
    with pytest.raises(ForeignLink, match=refused("the users list's @odata.nextLink", trap)):
        await read_all(reader.users())
    assert tokens_sent(graph) == {f"Bearer {TOKEN}"}
    assert trap.seen == []


async def test_a_delta_next_link_to_another_host_is_refused(reader: BulkReader, graph: StubGraph, trap: Trap) -> None:
    """A users delta page whose nextLink leaves Graph: ForeignLink after that page; nothing reaches the trap."""
    with pytest.raises(ForeignLink, match=refused("a users delta @odata.nextLink", trap)):
        await read_all(reader.delta(f"{graph.base_url}/users/delta?$deltatoken=ours"))
    assert trap.seen == []


async def test_a_stored_delta_link_to_another_host_is_never_sent(reader: BulkReader, trap: Trap) -> None:
    """The deltaLink read back from storage is checked before the first request: not even one goes out."""
    with pytest.raises(ForeignLink, match=refused("the stored users deltaLink", trap)):
        await read_all(reader.delta(f"{trap.base_url}/users/delta?$deltatoken=planted"))
    assert reader.requests == 0
    assert trap.seen == []


async def test_a_device_next_link_to_another_host_is_refused(reader: BulkReader, trap: Trap) -> None:
    """managedDevices pages follow the same rule."""
    with pytest.raises(ForeignLink, match=refused("the managed devices @odata.nextLink", trap)):
        await reader.devices_per_user(DeviceTally())
    assert trap.seen == []


async def test_a_redirect_to_another_host_is_not_followed(reader: BulkReader, graph: StubGraph, trap: Trap) -> None:
    """A 302 from the Graph host to another origin: the client refuses the redirected request (ForeignLink)."""
    with pytest.raises(ForeignLink, match=refused("a GET request", trap)):
        await reader.catalog()
    assert [path for _, path, _ in graph.seen] == ["/v1.0/subscribedSkus"]
    assert trap.seen == []


async def test_no_request_leaves_for_another_origin_whoever_builds_it(
    reader: BulkReader, graph: StubGraph, trap: Trap
) -> None:
    """Even a request built by hand on the gateway's adapter (no link check in the way) never reaches the trap."""
    info = RequestInformation(Method.GET)
    info.url = f"{trap.base_url}/users"
    with pytest.raises(ForeignLink):
        await reader._adapter.send_primitive_async(info, "bytes", RAW_ERRORS)
    assert trap.seen == []
