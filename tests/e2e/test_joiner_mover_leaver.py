"""Joiner, mover and leaver over real HTTP: the HR system POSTs signed events to the local host, the queue
functions from function_app.py do the rest against Azurite and the emulated tenant."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import function_app
from licensing.core.signing import sign
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost
from licensing.dev.localhttp import LocalHttp
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from tests.conftest import HR_SECRET
from tests.helpers import ASSIGN, EMS, hire, statuses

INTUNE_EDU = "d9d89b70-a645-4c24-b041-8d3cb1884ec7"
INTUNE_A_D = "2b317a4a-77a6-4188-9437-b68a77b4e2c6"


@pytest.fixture
async def hr(services: Services, azurite: Azurite) -> AsyncIterator[tuple[LocalHttp, LocalHost]]:
    """The HTTP and queue halves of the local host over the app's registered functions."""
    host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=0, poll_interval=0.05)
    async with LocalHttp(function_app.app) as http:
        yield http, host
    await host.close()


async def send(http: LocalHttp, *events: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a signed batch over HTTP, as the HR system does."""
    body = json.dumps({"events": list(events)}).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Timestamp": timestamp,
               "X-Signature": sign(HR_SECRET, timestamp, body)}  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{http.base_url}/hr/events?code=function-key", data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def event(event_id: str, kind: str, upn: str, **extra: Any) -> dict[str, Any]:
    return {"eventId": event_id, "type": kind, "employeeId": "E1", "userPrincipalName": upn, **extra}


async def test_joiner_over_http_ends_verified(
    services: Services, tenant: EmulatedTenant, hr: tuple[LocalHttp, LocalHost]
) -> None:
    """hire -> 202 over HTTP -> EMS verified with INTUNE_A disabled and the HR country as usage location."""
    http, host = hr
    user = hire(tenant, "joiner", location=None)
    status, answer = await send(http, event("j1", "hire", user.user_principal_name, department="Sales", country="FR"))
    assert (status, answer["accepted"]) == (202, ["j1"])
    await host.run_until_idle(limit_seconds=30)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"
    assert user.usage_location == "FR"


async def test_mover_swaps_sku_in_one_call_and_only_when_the_outcome_changes(
    services: Services, tenant: EmulatedTenant, hr: tuple[LocalHttp, LocalHost]
) -> None:
    """A title change keeps everything; a move to Teachers swaps EMS for Intune for Education + companion."""
    http, host = hr
    user = hire(tenant, "mover")
    await send(http, event("m1", "hire", user.user_principal_name, department="Sales"))
    await host.run_until_idle(limit_seconds=30)
    ems_free = tenant.state.free_units(EMS)
    await send(http, event("m2", "update", user.user_principal_name, department="Sales", jobTitle="Lead"))
    await host.run_until_idle(limit_seconds=30)
    assert tenant.state.requests[ASSIGN] == 1  # same rule, same licenses: nothing written
    await send(http, event("m3", "update", user.user_principal_name, department="Teachers",
                           companyName="Contoso School"))  # fmt: skip
    await host.run_until_idle(limit_seconds=30)
    assert tenant.state.requests[ASSIGN] == 2  # add and remove in one call
    held = {tenant.state.skus[a.sku_id].part_number for a in user.assignments}
    assert held == {"INTUNE_EDU", "INTUNE_A_D"}
    assert tenant.state.free_units(EMS) == ems_free + 1
    rows = await statuses(services, user.id)
    assert rows["EMS"].outcome == "removed"
    assert (rows["INTUNE_EDU"].outcome, rows["INTUNE_A_D"].outcome) == ("verified", "verified")
    removed = [e for e in await services.storage.events(user.id) if e.kind == "LicenseRemoved"]
    assert [(e.sku, e.before, e.after) for e in removed] == [("EMS", ("INTUNE_A",), ())]


async def test_leaver_loses_managed_licenses_and_frees_the_seat(
    services: Services, tenant: EmulatedTenant, hr: tuple[LocalHttp, LocalHost]
) -> None:
    """terminate -> the app's EMS seat returns; a group license and a hand-assigned SKU stay; before/after recorded."""
    http, host = hr
    user = hire(tenant, "leaver")
    await send(http, event("l0", "hire", user.user_principal_name, department="Sales"))
    await host.run_until_idle(limit_seconds=30)
    tenant.state.assign_license(user.id, [{"skuId": INTUNE_A_D, "disabledPlans": []}], [])  # an admin's exception
    user.assignments.append(type(user.assignments[0])(INTUNE_EDU, [], "group-1", time.time()))
    free_before = tenant.state.free_units(EMS)
    status, _ = await send(http, event("l1", "terminate", user.user_principal_name))
    assert status == 202
    await host.run_until_idle(limit_seconds=30)
    assert tenant.state.free_units(EMS) == free_before + 1
    assert sorted((a.sku_id, a.assigned_by_group) for a in user.assignments) == sorted(
        [(INTUNE_A_D, None), (INTUNE_EDU, "group-1")]
    )
    rows = await statuses(services, user.id)
    assert rows["EMS"].outcome == "removed"
    assert "2 license(s) not assigned by this app" in rows["~leaver"].reason
    [removed] = [e for e in await services.storage.events(user.id) if e.kind == "LicenseRemoved" and e.sku == "EMS"]
    assert (removed.before, removed.after, removed.source) == (("INTUNE_A",), (), "hr")


async def test_leaver_is_not_relicensed_by_later_notifications_until_rehired(
    services: Services, tenant: EmulatedTenant, hr: tuple[LocalHttp, LocalHost]
) -> None:
    """After terminate, a Graph notification or sweep request assigns nothing; a later HR hire does."""
    http, host = hr
    user = hire(tenant, "boomerang")
    await send(http, event("b0", "hire", user.user_principal_name, department="Sales"))
    await host.run_until_idle(limit_seconds=30)
    await send(http, event("b1", "terminate", user.user_principal_name))
    await host.run_until_idle(limit_seconds=30)
    assert user.assignments == []
    await services.storage.send("license-requests", {"user": user.id, "source": "graph", "requestId": "g-later"})
    await host.run_until_idle(limit_seconds=30)
    assert user.assignments == []
    refused = [e for e in await services.storage.events(user.id) if e.kind == "RequestRejected"]
    assert "only a later HR hire licenses them again" in refused[0].detail
    await send(http, event("b2", "hire", user.user_principal_name, department="Sales"))
    await host.run_until_idle(limit_seconds=30)
    assert [a.sku_id for a in user.assignments] == [EMS]
    assert "~leaver" not in await statuses(services, user.id)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Content-Type": "application/json", "X-Timestamp": "1", "X-Signature": "a" * 64}, b"{}", 401),
        ({"Content-Type": "text/plain"}, b"{}", 415),
        ({"Content-Type": "application/json"}, b" " * (1024 * 1024 + 1), 413),
        (None, b"{not json", 400),
    ],
    ids=["stale-unsigned", "wrong-type", "oversize", "malformed-signed"],
)
async def test_bad_requests_over_real_http_get_the_right_4xx_and_queue_nothing(
    services: Services, hr: tuple[LocalHttp, LocalHost], headers: dict[str, str] | None, body: bytes, expected: int
) -> None:
    """The local host's HTTP server returns the function's 4xx; nothing reaches the queue."""
    http, _ = hr
    if headers is None:  # correctly signed, but not JSON
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Timestamp": timestamp,
                   "X-Signature": sign(HR_SECRET, timestamp, body)}  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{http.base_url}/hr/events", data=body, headers=headers) as response,
    ):
        assert response.status == expected
        assert "error" in await response.json()
    props = await services.storage.queue("license-requests").get_queue_properties()
    assert props.approximate_message_count == 0


async def test_a_leaver_hands_the_freed_seat_to_a_blocked_user(
    services: Services, tenant: EmulatedTenant, hr: tuple[LocalHttp, LocalHost]
) -> None:
    """EMS E5 full: the second executive is blocked; when the first leaves, the seat goes to the blocked one."""
    http, host = hr
    premium = next(s for s in tenant.state.skus.values() if s.part_number == "EMSPREMIUM")
    premium.enabled += 1  # exactly one free seat
    first, second = hire(tenant, "exec1", department="Executive"), hire(tenant, "exec2", department="Executive")
    await send(http, event("x1", "hire", first.user_principal_name, department="Executive"))
    await host.run_until_idle(limit_seconds=30)
    await send(http, event("x2", "hire", second.user_principal_name, department="Executive"))
    await host.run_until_idle(limit_seconds=30)
    assert (await statuses(services, second.id))["EMSPREMIUM"].outcome == "blocked"
    await send(http, event("x3", "terminate", first.user_principal_name))
    await host.run_until_idle(limit_seconds=30)
    assert (await statuses(services, second.id))["EMSPREMIUM"].outcome == "verified"
    assert tenant.state.free_units(premium.id) == 0


async def test_low_free_seats_are_warned_about(
    services: Services, tenant: EmulatedTenant, hr: tuple[LocalHttp, LocalHost], caplog: pytest.LogCaptureFixture
) -> None:
    """Below LICENSING_LOW_SEAT_THRESHOLD free seats, an assignment logs a warning and records SeatsLow."""
    from dataclasses import replace  # noqa: PLC0415

    http, host = hr
    services.settings = replace(services.settings, low_seat_threshold=100_000)
    user = hire(tenant, "lowseat")
    await send(http, event("s1", "hire", user.user_principal_name, department="Sales"))
    await host.run_until_idle(limit_seconds=30)
    [warning] = [e for e in await services.storage.events("_seats") if e.kind == "SeatsLow"]
    assert warning.sku == "EMS"
    assert "low seats: EMS has" in caplog.text
