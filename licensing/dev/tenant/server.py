"""The emulated tenant over HTTP: an aiohttp app on a loopback port that the real msgraph-sdk can call.

async with EmulatedTenant() as tenant:
    adapter.base_url = tenant.base_url  # "http://127.0.0.1:54321/v1.0"
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from types import TracebackType

from aiohttp import web

from licensing.dev.tenant.admin import add_admin_routes
from licensing.dev.tenant.batch import handle_batch
from licensing.dev.tenant.faults import Faults
from licensing.dev.tenant.graph_api import dispatch
from licensing.dev.tenant.model import GraphError, new_id
from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse, error_response
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.webhooks import Delivery, Webhooks

CONTEXT = web.AppKey("context", Context)


def create_app(state: TenantState, faults: Faults, webhooks: Webhooks | None = None) -> web.Application:
    """An aiohttp app serving Graph v1.0 under /v1.0 and the emulator's own controls under /_emulator.

    Without ``webhooks`` the app makes its own and closes it on cleanup.
    """
    app = web.Application()
    if webhooks is None:
        webhooks = Webhooks(state)
        owned = webhooks

        async def close_webhooks(_: web.Application) -> None:
            await owned.close()

        app.on_cleanup.append(close_webhooks)
    app[CONTEXT] = Context(state, faults, webhooks)
    add_admin_routes(app, app[CONTEXT])
    app.router.add_route("*", "/v1.0/{tail:.*}", _graph)
    app.router.add_route("*", "/{tail:.*}", _not_graph)
    return app


async def _graph(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if ctx.faults.latency_ms > 0:  # once per HTTP request, a $batch included
        await asyncio.sleep(ctx.faults.latency_ms / 1000)
    req = GraphRequest(
        method=request.method.upper(),
        path="/" + request.match_info["tail"],
        query=dict(request.query.items()),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.read(),
        base_url=f"{request.url.origin()}/v1.0",
        client_request_id=request.headers.get("client-request-id") or new_id(),
    )
    delay = ctx.faults.draw_slow()  # once per HTTP request, a $batch included
    # A slow answer: the request takes effect first (a write is applied), only then does the answer wait -
    # a gateway that is slow to reply, so a client that times out never learns its write went through.
    if req.path == "/$batch" and req.method == "POST":
        response = await handle_batch(ctx, req)
    else:
        response = await dispatch(ctx, req)
    if delay > 0:
        ctx.state.slow_answers += 1
        await asyncio.sleep(delay)
    return to_web(response)


async def _not_graph(request: web.Request) -> web.StreamResponse:
    error = GraphError(404, "NotFound", f"No such endpoint: {request.path}. Graph v1.0 is served under /v1.0.")
    request_id = new_id()
    return to_web(error_response(error, request_id, request.headers.get("client-request-id") or request_id))


def to_web(response: GraphResponse) -> web.Response:
    """An aiohttp response for a GraphResponse (no body for 204)."""
    if response.body is None:
        return web.Response(status=response.status, headers=response.headers)
    body = json.dumps(response.body, separators=(",", ":")).encode()  # compact, as Graph sends it
    return web.Response(status=response.status, body=body, headers=response.headers)


def require_loopback(host: str) -> None:
    """Refuse any bind address but loopback: this is a test double, never a network service."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"EmulatedTenant binds loopback only (127.0.0.0/8, ::1 or localhost), not {host!r}: "
            "it is an unauthenticated test double."
        )


class EmulatedTenant:
    """The emulated Graph tenant on a free loopback port of the current event loop.

    ``state`` and ``faults`` stay live: change seats, users, provisioning delay or faults while it runs.
    ``webhooks`` owns the HTTP session that validates and notifies subscribers; it closes with the tenant.
    """

    def __init__(
        self,
        state: TenantState | None = None,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        require_loopback(host)
        self.state = state if state is not None else TenantState.default()
        self.faults = faults if faults is not None else Faults()
        # "localhost" may resolve to two families; port 0 would then give each its own port.
        self.host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        self.port = port
        self.webhooks = Webhooks(self.state)
        self._runner: web.AppRunner | None = None

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>`` (admin endpoints live under ``/_emulator``)."""
        if self._runner is None:
            raise RuntimeError("the emulated tenant is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The Graph base URL to give the SDK's request adapter: ``<root_url>/v1.0``."""
        return f"{self.root_url}/v1.0"

    async def start(self) -> EmulatedTenant:
        """Bind and serve; ``port`` becomes the port actually bound."""
        app = create_app(self.state, self.faults, self.webhooks)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def stop(self) -> None:
        """Stop serving and close connections, then finish pending notifications and close their session."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.webhooks.close()

    async def notify_user_changed(self, user_id: str, change_type: str = "updated") -> list[Delivery]:
        """POST Graph's change notification for one user to every live subscription wanting ``change_type``."""
        return await self.webhooks.notify_user_changed(user_id, change_type)

    async def send_lifecycle(self, subscription_id: str, event: str = "reauthorizationRequired") -> list[Delivery]:
        """POST Graph's lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``)."""
        return await self.webhooks.send_lifecycle(subscription_id, event)

    async def __aenter__(self) -> EmulatedTenant:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
