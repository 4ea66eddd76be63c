"""The HTTP half of the local host: serves the app's HTTP-triggered functions under /api on loopback, and runs its
timer functions, on demand or on their NCRONTAB schedules. A dev tool like localhost.py; in Azure the Functions host
does this.

Function keys are not enforced: every route answers whatever its auth level, and ``?code=`` is passed through to the
function and otherwise ignored (as `func start` does locally). Only loopback addresses are accepted for binding.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.timer import TimerRequest

from licensing.core.cron import CronError, next_occurrence
from licensing.dev.localhost import indexed_functions
from licensing.dev.tenant import require_loopback

log = logging.getLogger(__name__)
HttpFunction = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]
TimerFunction = Callable[[func.TimerRequest], Awaitable[None]]
LATE_SECONDS = 5.0  # a timer run starting later than this after its occurrence is marked past due
_SETTING = re.compile(r"%([A-Za-z0-9_]+)%")


def resolve_schedule(schedule: str, env: Mapping[str, str]) -> str:
    """``%SETTING%`` -> its value, as the host binds ``schedule="%SWEEP_SCHEDULE%"`` from the app settings."""

    def setting(match: re.Match[str]) -> str:
        if match.group(1) not in env:
            raise CronError(f"schedule {schedule!r} names app setting {match.group(1)}, which is not set")
        return env[match.group(1)]

    return _SETTING.sub(setting, schedule)


class LocalHttp:
    """``async with LocalHttp(app) as http:`` serves POST/GET http://127.0.0.1:PORT/api/<route>."""

    def __init__(self, app: func.FunctionApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host)
        self.host, self.port = host, port
        self.routes: dict[str, tuple[list[str], HttpFunction]] = {}
        self.timers: dict[str, TimerFunction] = {}
        self.schedules: dict[str, str] = {}  # timer name -> schedule as registered (may be "%SETTING%")
        for fn in indexed_functions(app):
            trigger = fn.get_trigger().get_dict_repr()
            if trigger["type"] == "httpTrigger":
                methods = [str(m).rsplit(".", 1)[-1].upper() for m in trigger.get("methods") or ["GET", "POST"]]
                self.routes[trigger["route"]] = (methods, fn.get_user_function())
            elif trigger["type"] == "timerTrigger":
                self.timers[fn.get_function_name()] = fn.get_user_function()
                self.schedules[fn.get_function_name()] = trigger["schedule"]
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> LocalHttp:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{route:.+}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()  # a port in use must not leave the runner half set up
            raise
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
            log.warning("%s /api/%s failed: %s", request.method, route, type(exc).__name__)
            return web.Response(status=500, text=f"function failed: {type(exc).__name__}")
        # The route only, never the query: it can carry a function key or a validation token.
        log.info("%s /api/%s -> %d", request.method, route, response.status_code)
        headers: dict[str, Any] = dict(response.headers)
        headers["Content-Type"] = response.mimetype or "text/plain"
        return web.Response(status=response.status_code, body=response.get_body(), headers=headers)

    async def run_timer(self, name: str, *, past_due: bool = False) -> None:
        """Invoke a timer function once, as its schedule would."""
        await self.timers[name](TimerRequest(past_due=past_due))

    def next_runs(self, env: Mapping[str, str] | None = None, *, now: datetime | None = None) -> dict[str, datetime]:
        """When each timer fires next (UTC), its ``%SETTING%`` schedule read from ``env`` (default: os.environ)."""
        env = os.environ if env is None else env
        now = datetime.now(UTC) if now is None else now
        return {name: next_occurrence(resolve_schedule(s, env), now) for name, s in self.schedules.items()}

    async def serve_timers(self, env: Mapping[str, str] | None = None) -> None:
        """Run each timer function on its schedule until cancelled, like the host's timer listener.

        A run still going when its next occurrence comes is not overlapped (that occurrence is skipped); a failed
        run is logged and not retried, as in Azure. Missed occurrences (the machine slept) run once, past due.
        """
        env = os.environ if env is None else env
        schedules = {name: resolve_schedule(s, env) for name, s in self.schedules.items()}
        due = self.next_runs(env)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                name = min(due, key=due.__getitem__)
                now = datetime.now(UTC)
                wait = (due[name] - now).total_seconds()
                if wait > 0:
                    await asyncio.sleep(min(wait, 60.0))  # re-read the clock each minute: a laptop may suspend
                    continue
                if name in running and not running[name].done():
                    log.warning("timer %s: previous run still going, this occurrence is skipped", name)
                else:
                    late = (now - due[name]).total_seconds() > LATE_SECONDS
                    running[name] = asyncio.create_task(self.fire_timer(name, past_due=late))
                due[name] = next_occurrence(schedules[name], max(now, due[name]))
                log.info("timer %s: next run %s", name, f"{due[name]:%Y-%m-%d %H:%M:%S} UTC")
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def fire_timer(self, name: str, *, past_due: bool = False) -> None:
        """Run a timer function once; a failure is logged, not raised, as the host treats a failed timer run."""
        log.info("timer %s: running%s", name, " (past due)" if past_due else "")
        try:
            await self.run_timer(name, past_due=past_due)
        except Exception as exc:  # the host logs a failed timer run and waits for the next occurrence
            log.warning("timer %s failed: %s: %s", name, type(exc).__name__, exc)
