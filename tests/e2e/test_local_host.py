"""End to end through the local host: Azurite queues drive the functions registered in function_app.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

import function_app
from licensing import composition
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import UNIDENTIFIED
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from tests.helpers import ASSIGN, hire, request, statuses


@pytest.fixture
async def host(services: Services, azurite: Azurite) -> AsyncIterator[LocalHost]:
    """The local host over the app's real function registrations, redelivering failures at once."""
    running = LocalHost(function_app.app, azurite.connection_string, retry_visibility=0, poll_interval=0.05)
    yield running
    await running.close()


async def send(services: Services, body: dict[str, object] | str) -> None:
    """Enqueue like a producer: base64 of JSON, as host.json's messageEncoding says."""
    text = body if isinstance(body, str) else json.dumps(body)
    await services.storage.queue(LICENSE_REQUESTS_QUEUE).send_message(text)


async def test_enqueued_requests_end_verified_with_every_plan_recorded(
    services: Services, tenant: EmulatedTenant, host: LocalHost
) -> None:
    """Five hires enqueued -> assigned -> pending -> verified rows in Azurite; the invalid one rejected."""
    tenant.state.provisioning_delay = 1.0
    users = [hire(tenant, f"e2e{i}", location=None if i % 2 else "GB") for i in range(5)]
    for user in users:
        await send(services, request(user.user_principal_name))
    await send(services, "this is not json")
    stats = await host.run_until_idle(limit_seconds=60)
    assert stats.poisoned == {}
    # The two users without a usage location get one set, and Graph refuses assignLicense for a moment after
    # that (replication lag, strict tenant: 2 s): each comes back once through the queue (3 s later).
    lagged = sum(1 for u in users if u.user_principal_name.startswith(("e2e1", "e2e3")))
    assert stats.succeeded["onboard"] == 6 + lagged
    assert stats.succeeded["verify"] >= 5
    for user in users:
        row = (await statuses(services, user.id))["EMS"]
        assert row.outcome == "verified", row.reason
        assert row.plan_statuses["INTUNE_A"] == "Disabled"
        assert set(row.plan_statuses.values()) == {"Disabled", "Success"}
        assert user.usage_location in {"GB", "US"}
    [rejected] = [r async for r in services.storage.statuses(UNIDENTIFIED)]
    assert rejected.outcome == "rejected"
    assert tenant.state.requests[ASSIGN] == 5 + lagged  # the refused ones included


async def test_redelivered_request_changes_nothing(services: Services, tenant: EmulatedTenant, host: LocalHost) -> None:
    """At-least-once delivery: the same request again ends in the same state with no extra assignLicense."""
    user = hire(tenant, "again")
    body = request(user.user_principal_name, request_id="same-request")
    await send(services, body)
    await host.run_until_idle(limit_seconds=30)
    before = (await statuses(services, user.id))["EMS"]
    await send(services, body)
    await host.run_until_idle(limit_seconds=30)
    after = (await statuses(services, user.id))["EMS"]
    assert tenant.state.requests[ASSIGN] == 1
    assert (before.outcome, after.outcome) == ("verified", "verified")
    assert after.plan_statuses == before.plan_statuses


async def test_failing_message_is_poisoned_after_max_dequeue_and_recorded(
    services: Services, tenant: EmulatedTenant, host: LocalHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph timing out on every delivery: 5 deliveries, then the poison function records who, what and why."""
    monkeypatch.setenv("LICENSING_GRAPH_TIMEOUT_SECONDS", "0.3")
    await composition.reset()
    services = await composition.services()
    user = hire(tenant, "stuck")
    tenant.faults.latency_ms = 1000
    await send(services, request(user.user_principal_name, request_id="r-stuck"))
    stats = await host.run_until_idle(limit_seconds=60)
    assert stats.failed["onboard"] == host.max_dequeue_count == 5
    assert stats.poisoned == {"onboard": 1}
    assert stats.succeeded["onboard_poison"] == 1
    row = (await statuses(services, user.user_principal_name))["-"]
    assert row.outcome == "failed"
    assert row.request_id == "r-stuck"
    assert "delivery 5: Graph timed out while trying to read user" in row.reason
    kinds = [e.kind for e in await services.storage.events(user.user_principal_name)]
    assert kinds.count("AttemptFailed") == 5
    assert kinds[0] == "MessagePoisoned"
    assert user.assignments == []


async def test_concurrent_requests_for_one_user_write_once(
    services: Services, tenant: EmulatedTenant, host: LocalHost
) -> None:
    """The same request twice plus a Graph request by id, all in one batch: one assignLicense, one verified row."""
    user = hire(tenant, "twice")
    body = request(user.user_principal_name, request_id="r-twice")
    await send(services, body)
    await send(services, body)
    await send(services, {"user": user.id, "source": "graph", "requestId": "g-twice"})
    stats = await host.run_until_idle(limit_seconds=60)
    assert stats.poisoned == {}
    assert tenant.state.requests[ASSIGN] == 1
    rows = await statuses(services, user.id)
    assert rows["EMS"].outcome == "verified"
    assert set(rows) == {"EMS"}
