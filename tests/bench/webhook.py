"""`make bench`: HR webhook ack latency on loopback, ours (verify, dedupe, enqueue, 202) vs the naive way
(assign the license inline before answering). Prints one table; figures go in docs/performance.md."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.table import Table

from licensing import composition
from licensing.core.signing import check_signature, sign
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings
from licensing.dev.localhttp import LocalHttp
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.services.onboard import onboard

SECRET = "bench-secret"
EVENTS = 1000
NAIVE_SAMPLE = 200  # the naive way is slow; measured on a sample, per-request figures are comparable
GRAPH_LATENCY_MS = 20  # injected per Graph request, a kind figure for a real tenant


def signed_event(i: int, upn: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"eventId": f"bench-{i}-{uuid.uuid4().hex[:6]}", "type": "hire", "employeeId": f"E{i}",
                       "userPrincipalName": upn, "department": "Sales"}).encode()  # fmt: skip
    ts = str(int(time.time()))
    return body, {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sign(SECRET, ts, body)}


async def measure(url: str, upns: list[str]) -> list[float]:
    """Sequential signed POSTs (one event each); returns each ack time in ms."""
    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i, upn in enumerate(upns):
            body, headers = signed_event(i, upn)
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                assert response.status in {200, 202}, response.status
            times.append((time.perf_counter() - started) * 1000)
    return times


async def naive_server() -> tuple[web.AppRunner, str]:
    """What a quick webhook does: check the signature, then do the licensing inline, then answer."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        check_signature(secrets=(SECRET,), timestamp=request.headers["X-Timestamp"],
                        signature=request.headers["X-Signature"], body=body, now=time.time())  # fmt: skip
        data = json.loads(body)
        message = {"user": data["userPrincipalName"], "source": "hr", "requestId": data["eventId"],
                   "attributes": {"department": data["department"]}}  # fmt: skip
        await onboard(json.dumps(message), await composition.services())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/naive", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/naive"


def row(table: Table, name: str, times: list[float], note: str) -> None:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    table.add_row(name, str(len(times)), f"{statistics.median(ordered):.1f}", f"{p99:.1f}", f"{ordered[-1]:.1f}",
                  f"{sum(times) / 1000:.1f}", note)  # fmt: skip


async def main() -> None:
    import function_app  # noqa: PLC0415  # after settings exist, like the worker

    console = Console()
    with Azurite() as azurite:
        state = TenantState.default(provisioning_delay=0)
        upns = [state.add_user(f"bench{i}@contoso.onmicrosoft.com", f"Bench {i}", usage_location="US",
                               department="Sales").user_principal_name for i in range(NAIVE_SAMPLE)]  # fmt: skip
        async with EmulatedTenant(state=state) as tenant:
            tenant.faults.latency_ms = GRAPH_LATENCY_MS
            os.environ.update(local_settings(azurite.connection_string, tenant.base_url))
            os.environ["HR_WEBHOOK_SECRET"] = SECRET
            await composition.services()
            async with LocalHttp(function_app.app) as http:
                await measure(f"{http.base_url}/hr/events", upns[:20])  # warm-up: imports, connections
                ours = await measure(f"{http.base_url}/hr/events", [upns[i % len(upns)] for i in range(EVENTS)])
            runner, naive_url = await naive_server()
            naive = await measure(naive_url, upns)
            await runner.cleanup()
            await composition.reset()
    table = Table(title=f"HR webhook ack time on loopback ({GRAPH_LATENCY_MS} ms injected per Graph request)")
    for column in ("variant", "events", "p50 ms", "p99 ms", "max ms", "total s", "note"):
        table.add_column(column)
    row(table, "ours: verify, dedupe, enqueue, 202", ours, "licensing happens later, from the queue")
    row(table, "naive: assign inline, then 200", naive, f"sample of {NAIVE_SAMPLE}; Graph calls in the request")
    console.print(table)
    console.print(f"p50 speed-up: {statistics.median(naive) / statistics.median(ours):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
