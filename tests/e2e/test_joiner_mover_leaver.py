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
from licensing.composition import Services
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost
from licensing.dev.localhttp import LocalHttp
from licensing.dev.tenant import EmulatedTenant
from licensing.signing import sign
from tests.conftest import HR_SECRET
from tests.helpers import ASSIGN, EMS, INTUNE_A, hire, statuses

INTUNE_EDU = "d9d89b70-a645-4c24-b041-8d3cb1884ec7"


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
    """terminate -> the EMS seat returns, the group-assigned license stays, before/after recorded."""
    http, host = hr
    user = hire(tenant, "leaver")
    tenant.state.assign_license(user.id, [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], [])
    group_sku = INTUNE_EDU
    user.assignments.append(type(user.assignments[0])(group_sku, [], "group-1", time.time()))
    free_before = tenant.state.free_units(EMS)
    status, _ = await send(http, event("l1", "terminate", user.user_principal_name))
    assert status == 202
    await host.run_until_idle(limit_seconds=30)
    assert tenant.state.free_units(EMS) == free_before + 1
    assert [(a.sku_id, a.assigned_by_group) for a in user.assignments] == [(group_sku, "group-1")]
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "removed"
    assert "1 group-assigned license(s) left to their groups" in row.reason
    [removed] = [e for e in await services.storage.events(user.id) if e.kind == "LicenseRemoved"]
    assert (removed.before, removed.after, removed.source) == (("INTUNE_A",), (), "hr")
