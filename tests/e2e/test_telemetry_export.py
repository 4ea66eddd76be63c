"""With APPLICATIONINSIGHTS_CONNECTION_STRING set, telemetry really leaves the process: to a fake ingestion endpoint."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from licensing.dev.tenant import EmulatedTenant
from tests.conftest import CLIENT_STATE, HR_PREVIOUS_SECRET, HR_SECRET, REPO

UPN = "aisha.khan@contoso.onmicrosoft.com"  # in the shipped demo tenant, unlicensed
IKEY = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
async def ingestion() -> AsyncIterator[tuple[str, list[tuple[str, bytes]]]]:
    """A fake Application Insights ingestion endpoint on loopback: (its URL, every (path, body) posted to it)."""
    posted: list[tuple[str, bytes]] = []

    async def track(req: web.Request) -> web.Response:
        body = await req.read()
        body = gzip.decompress(body) if req.headers.get("Content-Encoding") == "gzip" else body
        posted.append((req.path, body))
        count = len(json.loads(body))
        return web.json_response({"itemsReceived": count, "itemsAccepted": count, "errors": []})

    app = web.Application()
    app.router.add_post("/{path:.*}", track)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/", posted
    await runner.cleanup()


async def run_child(env: dict[str, str]) -> dict[str, Any]:
    """tests/e2e/telemetry_child.py in its own interpreter (the tenant keeps serving from this event loop)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.e2e.telemetry_child", UPN, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_telemetry_reaches_the_ingestion_endpoint_without_secrets_or_upns(
    app_env: dict[str, str], tenant: EmulatedTenant, ingestion: tuple[str, list[tuple[str, bytes]]]
) -> None:
    """Spans of both invocations and their Graph calls and the metrics are POSTed to /v2.1/track; none carries a
    secret or the user's UPN; no library spans, no log records (the host ships logs)."""
    endpoint, posted = ingestion
    env = {key: value for key, value in os.environ.items() if not key.startswith(("APPLICATIONINSIGHTS_", "OTEL_"))}
    env |= {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={IKEY};IngestionEndpoint={endpoint}",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # no calls to Microsoft's statsbeat endpoint
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",  # nor to its configuration service
        "OTEL_TRACES_SAMPLER": "always_on",  # the distro's default keeps 5 traces a second: a burst loses some
    }
    assert await run_child(env) == {"hr": 202, "flushed": True}
    assert posted
    assert {path.lstrip("/") for path, _ in posted} == {"v2.1/track"}  # the endpoint ends in "/", as Azure's do
    envelopes = [e for _, body in posted for e in json.loads(body)]
    assert {e["iKey"] for e in envelopes} == {IKEY}
    kinds = {e["name"].rsplit(".", 1)[-1] for e in envelopes}
    assert kinds == {"RemoteDependency", "Metric"}  # no Message (logs), no Request, no Exception
    spans = {e["data"]["baseData"]["name"]: e["data"]["baseData"] for e in envelopes if "Dependency" in e["name"]}
    assert {"function hr_events", "function onboard", "GET /v1.0/users/{id}", "GET /v1.0/subscribedSkus",
            "POST /v1.0/users/{id}/assignLicense"} <= set(spans)  # fmt: skip
    for name, span in spans.items():  # ours only: no kiota, httpx or Azure SDK spans; Graph calls by template
        assert (span["type"], name.split()[0]) == ("InProc", "function") or (
            span["type"] == "HTTP" and span["data"] == f"{tenant.base_url}{name.split()[1].removeprefix('/v1.0')}"
        ), span
    assign = spans["POST /v1.0/users/{id}/assignLicense"]
    assert (assign["resultCode"], assign["properties"]["licensing.graph.route"]) == ("200", "/users/{id}/assignLicense")
    parents = {e["data"]["baseData"]["id"]: e["tags"].get("ai.operation.parentId") for e in envelopes if "id" in
               e["data"]["baseData"]}  # fmt: skip
    assert parents[assign["id"]] == spans["function onboard"]["id"]
    metrics = {m["name"] for e in envelopes if e["name"].endswith("Metric") for m in e["data"]["baseData"]["metrics"]}
    assert {"licensing.assignments", "licensing.seats.free"} <= metrics
    exported = b"".join(body for _, body in posted).decode()
    for secret in (HR_SECRET, HR_PREVIOUS_SECRET, CLIENT_STATE, UPN, UPN.split("@", maxsplit=1)[0]):
        assert secret not in exported, secret
