"""The HTTP half of the local host: serves the app's HTTP-triggered functions under /api on loopback,
and runs its timer functions on demand. A dev tool like localhost.py; in Azure the Functions host does this."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.timer import TimerRequest

from licensing.dev.localhost import indexed_functions
from licensing.dev.tenant import require_loopback

HttpFunction = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


class LocalHttp:
    """``async with LocalHttp(app) as http:`` serves POST/GET http://127.0.0.1:PORT/api/<route>."""

    def __init__(self, app: func.FunctionApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host)
        self.host, self.port = host, port
        self.routes: dict[str, tuple[list[str], HttpFunction]] = {}
        self.timers: dict[str, Callable[[func.TimerRequest], Awaitable[None]]] = {}
        for fn in indexed_functions(app):
            trigger = fn.get_trigger().get_dict_repr()
            if trigger["type"] == "httpTrigger":
                methods = [str(m).rsplit(".", 1)[-1].upper() for m in trigger.get("methods") or ["GET", "POST"]]
                self.routes[trigger["route"]] = (methods, fn.get_user_function())
            elif trigger["type"] == "timerTrigger":
                self.timers[fn.get_function_name()] = fn.get_user_function()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> LocalHttp:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{route:.+}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # port 0: ask the socket
        self.base_url = f"http://{self.host}:{port}/api"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        if route not in self.routes:
            return web.Response(status=404, text=f"no function serves /api/{route}")
        methods, function = self.routes[route]
        if request.method not in methods:
            return web.Response(status=405, text=f"/api/{route} accepts {', '.join(methods)}")
        req = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            body=await request.read(),
        )
        try:
            response = await function(req)
        except Exception as exc:  # the host answers 500 when a function raises
            return web.Response(status=500, text=f"function failed: {type(exc).__name__}")
        headers: dict[str, Any] = dict(response.headers)
        headers["Content-Type"] = response.mimetype or "text/plain"
        return web.Response(status=response.status_code, body=response.get_body(), headers=headers)

    async def run_timer(self, name: str, *, past_due: bool = False) -> None:
        """Invoke a timer function once, as its schedule would."""
        await self.timers[name](TimerRequest(past_due=past_due))
