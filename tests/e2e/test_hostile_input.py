"""Input json.loads cannot read, through the functions registered in function_app.py: a record or a 4xx, never a crash.

A message that raised in onboard or verify went round five deliveries, then five more in the poison handler, and
ended in a poison-poison queue nothing reads; an HTTP body that raised answered 500 before any check.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions import HttpRequest, HttpResponse

import function_app
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.core.records import UNIDENTIFIED
from licensing.core.signing import sign
from licensing.dev.localhost import user_function
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from tests.conftest import HR_SECRET
from tests.helpers import drain, hire, invoke, request, statuses

HOSTILE = {  # the message, and why its row says it was rejected
    "nested 100,000 deep": ('{"user": ' + "[" * 100_000 + "]" * 100_000 + "}", "the limit is 32,768 bytes"),
    "nested 5,000 deep": ('{"user": ' + "[" * 5_000 + "]" * 5_000 + "}", "not valid JSON (nested too deeply)"),
    "a 5,000-digit number": (
        '{"user": "x@contoso.com", "requestId": "r", "attempt": ' + "9" * 5000 + "}",
        "not valid JSON (a value cannot be read: Exceeds the limit (4300 digits)",
    ),
}


@pytest.mark.parametrize("function", ["onboard", "verify"])
@pytest.mark.parametrize("what", sorted(HOSTILE))
async def test_a_queue_message_json_cannot_read_is_recorded_rejected(
    services: Services, function: str, what: str
) -> None:
    """onboard and verify record who (nobody), what (an excerpt) and why, and complete: no retry, no poison."""
    body, why = HOSTILE[what]
    await invoke(function, body)
    [row] = [r async for r in services.storage.statuses(UNIDENTIFIED)]
    assert (row.outcome, row.sku.startswith("message-")) == ("rejected", True)
    assert why in row.reason
    assert "message " in row.reason
    for queue in (LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE):
        assert await drain(services, queue) == []


async def post(name: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """Call a registered HTTP function with a real HttpRequest; the status and the decoded JSON answer."""
    request = HttpRequest(
        method="POST",
        url=f"http://localhost/api/{name}",
        headers={"Content-Type": "application/json", **(headers or {})},
        params={},
        body=body,
    )
    response: HttpResponse = await user_function(function_app.app, name)(request)
    return response.status_code, json.loads(response.get_body())


def signed(body: bytes) -> dict[str, str]:
    """HR webhook headers signing this body now."""
    timestamp = str(int(time.time()))
    return {"X-Timestamp": timestamp, "X-Signature": sign(HR_SECRET, timestamp, body)}


HTTP_HOSTILE = {
    "nested 100,000 deep": b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a 5,000-digit number": b'{"value": [{"clientState": ' + b"9" * 5000 + b"}]}",
}


@pytest.mark.parametrize("what", sorted(HTTP_HOSTILE))
async def test_a_signed_hr_body_json_cannot_read_is_a_400_naming_the_problem(services: Services, what: str) -> None:
    """The signature is right, the body is not JSON Python can read: 400 with the problem, nothing queued."""
    body = HTTP_HOSTILE[what]
    status, answer = await post("hr_events", body, signed(body))
    assert status == 400
    [problem] = answer["problems"]
    assert problem["loc"] == "(body)"
    assert "not valid JSON" in problem["msg"]
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


@pytest.mark.parametrize("name", ["graph_notifications", "graph_lifecycle"])
@pytest.mark.parametrize("what", sorted(HTTP_HOSTILE))
async def test_a_graph_body_json_cannot_read_is_a_400(services: Services, name: str, what: str) -> None:
    """Change and lifecycle notifications alike: 400 for a body they cannot read, nothing queued."""
    status, answer = await post(name, HTTP_HOSTILE[what])
    assert status == 400
    assert "not valid JSON" in answer["error"]
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


async def test_an_hr_request_dated_in_the_future_does_not_lift_a_leavers_tombstone(
    services: Services, tenant: EmulatedTenant
) -> None:
    """issuedAt a day ahead is refused (naming the field and the 5 minutes allowed); the leaver stays unlicensed."""
    user = hire(tenant, "leaver")
    await invoke("onboard", request(user.user_principal_name, source="hr"))
    await invoke("onboard", request(user.user_principal_name, source="hr", action="remove"))
    assert user.assignments == []
    assert "~leaver" in await statuses(services, user.id)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await invoke("onboard", request(user.user_principal_name, source="hr", request_id="r-future", issuedAt=tomorrow))
    assert user.assignments == []
    row = (await statuses(services, user.user_principal_name))["-"]
    assert (row.outcome, row.request_id) == ("rejected", "r-future")
    assert "issuedAt" in row.reason
    assert "at most 5 minutes" in row.reason
