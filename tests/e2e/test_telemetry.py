"""Telemetry of the real functions against Azurite and the emulated tenant: spans per invocation and Graph call,
and the licensing.* metrics equal to what was done."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
from azure.functions.timer import TimerRequest
from kiota_http.middleware.retry_handler import RetryHandler

import function_app
from licensing.adapters.graph.bulk import BulkReader
from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.storage.account import RUNS_TABLE
from licensing.adapters.storage.sweep_store import drift_rows
from licensing.core.errors import TransientError
from licensing.core.queues import LICENSE_VERIFY_QUEUE
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import user_function
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.generate import generate_tenant
from licensing.services.context import Services
from tests.helpers import app_over, drain, hire, queue_message, request
from tests.otel import Recorded, recording


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """Spans and metrics of this test, in memory."""
    with recording() as recorded:
        yield recorded


@pytest.fixture
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's RetryHandler retries at once (Retry-After and its backoff are tested elsewhere)."""
    monkeypatch.setattr(RetryHandler, "get_delay_time", lambda *_args, **_kwargs: 0.0)


async def onboard(upn: str, *, dequeue_count: int = 1) -> str:
    """Run the onboard function on a request for upn; returns the message id."""
    message = queue_message(request(upn), dequeue_count=dequeue_count)
    await user_function(function_app.app, "onboard")(message)
    return message.id or ""


async def test_onboard_and_verify_are_one_span_each_with_graph_calls_inside(
    services: Services, tenant: EmulatedTenant, otel: Recorded
) -> None:
    """Each invocation is a span named after its function; its Graph calls are child spans named by template."""
    users = [hire(tenant, "ada"), hire(tenant, "bob")]
    ids = [await onboard(u.user_principal_name) for u in users]
    for message in await drain(services, LICENSE_VERIFY_QUEUE):
        await user_function(function_app.app, "verify")(queue_message(message))
    invocations = otel.spans("function ")
    assert Counter(s.name for s in invocations) == {"function onboard": 2, "function verify": 2}
    onboards = [s for s in invocations if s.name == "function onboard"]
    assert [(s.attributes or {})["licensing.message_id"] for s in onboards] == ids
    for span in onboards:
        attributes = dict(span.attributes or {})
        assert (attributes["faas.name"], attributes["licensing.trigger"], attributes["licensing.dequeue_count"]) == (
            "onboard", "queue", 1
        )  # fmt: skip
        assert attributes["licensing.outcome"] == "assigned"
    assert {(s.attributes or {})["licensing.outcome"] for s in invocations if s.name == "function verify"} == {
        "verified"
    }
    by_id = {s.context.span_id: s for s in invocations}
    graph = otel.spans("graph ")
    for span in graph:
        assert span.parent is not None
        assert span.parent.span_id in by_id, span.name
        assert span.context.trace_id == by_id[span.parent.span_id].context.trace_id
    assert {"graph GET /users/{id}", "graph GET /subscribedSkus", "graph POST /users/{id}/assignLicense",
            "graph GET /users/{id}/licenseDetails"} <= {s.name for s in graph}  # fmt: skip
    for span in invocations + graph:
        assert not any(secret in span.name for u in users for secret in (u.user_principal_name, u.id, "@"))
    assignment = next(s for s in graph if s.name.endswith("assignLicense"))
    assert (assignment.attributes or {})["http.response.status_code"] == 200
    assert otel.total("licensing.assignments", sku="EMS", kind="assigned") == 2
    assert otel.by("licensing.verifications", "outcome") == {"verified": 2}


async def test_free_seats_gauge_equals_the_tenants_enabled_minus_consumed(
    services: Services, tenant: EmulatedTenant, otel: Recorded
) -> None:
    """After a catalog read the gauge reports every SKU's enabled - consumed, without calling Graph itself."""
    await onboard(hire(tenant, "cy").user_principal_name)
    assert isinstance(services.graph, GraphGateway)
    await services.graph.catalog(fresh=True)
    reads = tenant.state.requests["GET /subscribedSkus"]
    expected = {sku.part_number: max(tenant.state.free_units(sku.id), 0) for sku in tenant.state.skus.values()}
    assert otel.by("licensing.seats.free", "sku") == expected
    assert tenant.state.requests["GET /subscribedSkus"] == reads  # the gauge's callback read nothing


async def test_retried_429s_are_counted_though_the_call_succeeds(
    services: Services, tenant: EmulatedTenant, otel: Recorded, no_retry_wait: None
) -> None:
    """Two 429s the SDK retries away: both counted, and the call's span shows the resends and the final 200."""
    tenant.faults.throttle_next = 2
    await onboard(hire(tenant, "dee").user_principal_name)
    assert otel.points("licensing.graph.throttled") == [({"method": "GET", "route": "/users/{id}"}, 2)]
    first = otel.spans("graph ")[0]
    assert first.name == "graph GET /users/{id}"
    attributes = dict(first.attributes or {})
    assert (attributes["http.request.resend_count"], attributes["http.response.status_code"]) == (2, 200)
    assert (otel.spans("function onboard")[0].attributes or {})["licensing.outcome"] == "assigned"


async def test_throttling_past_the_retries_fails_the_spans_with_our_error_kind(
    services: Services, tenant: EmulatedTenant, otel: Recorded, no_retry_wait: None
) -> None:
    """Every attempt 429: four counted (first try + 3 retries); the Graph span and the invocation are errors."""
    user = hire(tenant, "eve")
    tenant.faults.throttle_rate = 1.0
    with pytest.raises(TransientError):
        await onboard(user.user_principal_name, dequeue_count=3)
    assert otel.total("licensing.graph.throttled") == 4
    [call] = otel.spans("graph ")
    assert ((call.attributes or {})["licensing.error"], call.status.description) == ("TransientError",) * 2
    [invocation] = otel.spans("function onboard")
    assert ((invocation.attributes or {})["licensing.outcome"], invocation.status.is_ok) == ("error", False)
    assert (invocation.attributes or {})["licensing.dequeue_count"] == 3
    assert [e.attributes["exception.type"] for e in invocation.events if e.attributes] == [
        "licensing.core.errors.TransientError"
    ]


async def test_429_inside_a_batch_is_counted_too(services: Services, tenant: EmulatedTenant, otel: Recorded) -> None:
    """A sub-request throttled inside a 200 $batch (the middleware sees only the 200) is counted by the reader."""
    user = hire(tenant, "fay")
    tenant.faults.throttle_next, tenant.faults.retry_after = 1, 0
    assert isinstance(services.graph, GraphGateway)
    [(status, _)] = await BulkReader(services.graph).batch([f"/users/{user.id}?$select=id"])
    assert status == 200
    assert otel.points("licensing.graph.throttled") == [({"method": "GET", "route": "/users/{id}"}, 1)]
    assert {s.name for s in otel.spans("graph ")} == {"graph POST /$batch"}


@pytest.fixture
async def generated(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> AsyncIterator[Services]:
    """60 generated users, half of them drifted, on clean storage."""
    state, _ = generate_tenant(60, drift_fraction=0.5, seed=5)
    async with app_over(state, azurite, monkeypatch) as (services, _):
        yield services


async def test_sweep_drift_metric_equals_the_drift_rows_of_the_run(generated: Services, otel: Recorded) -> None:
    """The sweep timer's licensing.sweep.drift, by kind, counts exactly the kinds in its SweepDrift rows."""
    await user_function(function_app.app, "sweep")(TimerRequest(past_due=False))
    [run] = [e async for e in generated.storage.table(RUNS_TABLE).query_entities("PartitionKey eq 'runs'")]
    rows = await drift_rows(generated.storage, run["RunId"])
    in_rows = Counter(kind for row in rows for kind in row["Kinds"].split(","))
    assert in_rows
    assert otel.by("licensing.sweep.drift", "kind") == in_rows
    assert {a["read"] for a, _ in otel.points("licensing.sweep.drift")} == {"full"}
    [sweep] = otel.spans("function sweep")
    assert (sweep.attributes or {})["licensing.trigger"] == "timer"
    children = {s.name for s in otel.spans("graph ") if s.parent and s.parent.span_id == sweep.context.span_id}
    assert {"graph GET /subscribedSkus", "graph GET /users", "graph GET /users/delta"} <= children
