"""POST /api/hr/events through the function registered in function_app.py, against real Azurite."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions import HttpRequest, HttpResponse

import function_app
from licensing.core.errors import TransientError
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.signing import sign
from licensing.dev.localhost import user_function
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from licensing.services.scheduling import held, release_due
from tests.conftest import HR_PREVIOUS_SECRET, HR_SECRET
from tests.helpers import EMS, INTUNE_A, RMS_S_PREMIUM, drain, hire, invoke

URL = "http://localhost/api/hr/events"


def event(event_id: str, kind: str = "hire", **extra: Any) -> dict[str, Any]:
    """An HR event as the HR system sends it."""
    return {"eventId": event_id, "type": kind, "employeeId": f"E-{event_id}",
            "userPrincipalName": f"{event_id}@contoso.onmicrosoft.com", "department": "Sales", **extra}  # fmt: skip


def signed(payload: object, *, secret: str = HR_SECRET, at: float | None = None, raw: bytes | None = None,
           headers: dict[str, str] | None = None) -> HttpRequest:  # fmt: skip
    """A request signed like the HR system signs it: hex HMAC over timestamp + "." + body."""
    body = raw if raw is not None else json.dumps(payload).encode()
    timestamp = str(int(time.time() if at is None else at))
    base = {"Content-Type": "application/json", "X-Timestamp": timestamp,
            "X-Signature": "sha256=" + sign(secret, timestamp, body)}  # fmt: skip
    return HttpRequest(method="POST", url=URL, headers={**base, **(headers or {})}, params={}, body=body)


async def post(request: HttpRequest) -> tuple[int, Any]:
    """Call the registered hr_events function; decode its JSON answer."""
    response: HttpResponse = await user_function(function_app.app, "hr_events")(request)
    return response.status_code, json.loads(response.get_body())


async def queued(services: Services) -> int:
    """Messages on license-requests, visible or delayed."""
    return (await services.storage.queue(LICENSE_REQUESTS_QUEUE).get_queue_properties()).approximate_message_count or 0


async def test_signed_batch_is_accepted_and_queued(services: Services) -> None:
    """Two signed events -> 202 listing both, two onboarding requests on the queue."""
    status, answer = await post(signed({"events": [event("a1"), event("a2", "update", country="DE")]}))
    assert status == 202
    assert answer == {"accepted": ["a1", "a2"], "duplicates": [], "scheduled": []}
    messages = sorted(await drain(services, LICENSE_REQUESTS_QUEUE), key=lambda m: m["requestId"])
    issued = messages[0].pop("issuedAt")
    assert datetime.fromisoformat(issued) <= datetime.now(UTC)
    who = {"user": "a1@contoso.onmicrosoft.com", "source": "hr", "requestId": "hr-a1"}
    assert messages[0] == {**who, "hrEvent": "hire", "attributes": {"department": "Sales"}}
    assert messages[1]["hrEvent"] == "update"
    assert messages[1]["usageLocation"] == "DE"


async def test_replayed_event_is_acknowledged_but_not_queued_again(services: Services) -> None:
    """HR retries the same eventId: 202 says duplicate, nothing new is enqueued."""
    assert (await post(signed(event("r1"))))[0] == 202
    status, answer = await post(signed({"events": [event("r1"), event("r2")]}))
    assert status == 202
    assert (answer["accepted"], answer["duplicates"]) == (["r2"], ["r1"])
    assert len(await drain(services, LICENSE_REQUESTS_QUEUE)) == 2


async def test_previous_secret_still_works_during_rotation(services: Services) -> None:
    """HR_WEBHOOK_SECRET_PREVIOUS is accepted alongside the new one."""
    assert (await post(signed(event("rot"), secret=HR_PREVIOUS_SECRET)))[0] == 202


def _tampered_request() -> HttpRequest:
    good = signed(event("t"))
    return HttpRequest(method="POST", url=URL, headers=dict(good.headers), params={},
                       body=good.get_body().replace(b"Sales", b"Execs"))  # fmt: skip


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: signed(event("x"), secret="wrong-secret"), "does not match"),
        (lambda: signed(event("x"), at=time.time() - 301), "old"),
        (lambda: signed(event("x"), at=time.time() + 120), "in the future"),
        (lambda: signed(event("x"), headers={"X-Signature": ""}), "missing X-Signature"),
        (lambda: signed(event("x"), headers={"X-Timestamp": ""}), "missing X-Timestamp"),
        (_tampered_request, "does not match"),
    ],
    ids=["wrong-secret", "stale", "future", "no-signature", "no-timestamp", "tampered-body"],
)
async def test_bad_signatures_get_401_and_nothing_is_queued(services: Services, make: Any, reason: str) -> None:
    """Every signature failure is a 401 naming the cause; the queue stays empty."""
    status, answer = await post(make())
    assert status == 401
    assert reason in answer["error"]
    assert await queued(services) == 0


async def test_field_errors_are_a_400_listing_each_problem_and_nothing_is_queued(services: Services) -> None:
    """One bad event in a batch rejects the batch, with where and what."""
    bad = {"events": [event("ok"), event("bad", "fired", country="Germany")]}
    status, answer = await post(signed(bad))
    assert status == 400
    assert answer["error"] == "invalid payload"
    assert {p["loc"] for p in answer["problems"]} >= {"events[1].type", "events[1].country"}
    assert await queued(services) == 0


async def test_malformed_json_is_400(services: Services) -> None:
    """A signed body that is not JSON: 400 at (body)."""
    status, answer = await post(signed(None, raw=b"{nope"))
    assert status == 400
    assert answer["problems"][0]["loc"] == "(body)"


async def test_oversize_body_is_413_and_wrong_content_type_is_415(services: Services) -> None:
    """Size and media type are checked before anything else."""
    status, answer = await post(signed(None, raw=b" " * (1024 * 1024 + 1)))
    assert (status, "limit" in answer["error"]) == (413, True)
    status, answer = await post(signed(event("c"), headers={"Content-Type": "text/plain"}))
    assert (status, answer["error"]) == (415, "Content-Type must be application/json, not text/plain")
    assert await queued(services) == 0


async def test_future_hire_is_delayed_on_the_queue_within_seven_days(services: Services) -> None:
    """A start date a few days out: queued now, invisible until then."""
    start = (datetime.now(UTC) + timedelta(days=3)).date()
    status, answer = await post(signed(event("soon", startDate=start.isoformat())))
    assert status == 202
    [scheduled] = answer["scheduled"]
    assert (scheduled["eventId"], scheduled["status"]) == ("soon", "delayed")
    assert scheduled["effective"].startswith(start.isoformat())
    queue = services.storage.queue(LICENSE_REQUESTS_QUEUE)
    assert await queued(services) == 1
    assert [m async for m in queue.receive_messages()] == []  # not visible yet


async def test_hire_beyond_seven_days_is_held_and_released_by_the_timer(services: Services) -> None:
    """Past the queue's 7-day limit the request waits in a table; the timer queues it when in reach."""
    start = datetime.now(UTC).date() + timedelta(days=30)
    status, answer = await post(signed(event("later", startDate=start.isoformat())))
    assert (status, answer["scheduled"][0]["status"]) == (202, "held")
    assert await queued(services) == 0
    [(effective, message)] = await held(services.storage)
    assert message["requestId"] == "hr-later"
    assert await release_due(services.storage, now=datetime.now(UTC)) == 0  # still too far
    assert await release_due(services.storage, now=effective - timedelta(days=6)) == 1
    assert await held(services.storage) == []
    assert await queued(services) == 1


async def test_leaver_with_future_end_date_is_scheduled_for_removal(services: Services) -> None:
    """terminate with endDate in 2 days -> a delayed remove request."""
    end = (datetime.now(UTC) + timedelta(days=2)).date()
    status, answer = await post(signed(event("bye", "terminate", endDate=end.isoformat())))
    assert (status, answer["scheduled"][0]["status"]) == (202, "delayed")


async def test_webhook_without_a_configured_secret_is_503_not_open(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing HR_WEBHOOK_SECRET never means "accept everything"."""
    from dataclasses import replace  # noqa: PLC0415

    monkeypatch.setattr(services, "settings", replace(services.settings, hr_webhook_secrets=()))
    status, answer = await post(signed(event("n")))
    assert status == 503
    assert "HR_WEBHOOK_SECRET" in answer["error"]
    assert await queued(services) == 0


async def test_secrets_and_signatures_never_reach_logs_or_tables(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Run good and bad requests with DEBUG logging; neither the secret nor any signature appears anywhere."""
    caplog.set_level("DEBUG")
    good = signed(event("leak1"))
    bad = signed(event("leak2"), secret="attacker-guess")
    await post(good)
    await post(bad)
    signatures = [good.headers["X-Signature"], bad.headers["X-Signature"]]
    text = caplog.text
    for marker in (HR_SECRET, HR_PREVIOUS_SECRET, *signatures, *(s.removeprefix("sha256=") for s in signatures)):
        assert marker not in text
        for table in ("HrEvents", "LicenseEvents", "LicenseStatus"):
            async for entity in services.storage.table(table).list_entities():
                assert marker not in json.dumps(entity, default=str)
    assert "signature rejected" in text  # the refusal itself is logged, without the values


async def test_concurrent_retries_of_one_event_queue_it_once(services: Services) -> None:
    """Five identical requests at once (an impatient HR system): one acceptance, one message; the others are
    duplicates once it is dispatched, or a 503 asking to retry while it is still in flight, never an early ack."""
    body = {"events": [event("race")]}
    answers = await asyncio.gather(*(post(signed(body)) for _ in range(5)))
    accepted = [a for _, a in answers if a["accepted"]]
    assert len(accepted) == 1
    for status, answer in answers:
        assert (status, tuple(answer.get("retry", ()))) in {(202, ()), (503, ("race",))}
    assert sum(len(a["duplicates"]) + len(a.get("retry", [])) for _, a in answers) == 4
    assert await queued(services) == 1


async def test_an_event_whose_dispatch_failed_is_queued_by_the_retry(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage fails after the claim: 503 naming the event; HR's retry a moment later queues it (not a duplicate)."""
    real_send = services.storage.send

    async def broken(*_: Any, **__: Any) -> None:
        raise TransientError("storage failed to send a message: ServiceRequestError")

    monkeypatch.setattr(services.storage, "send", broken)
    status, answer = await post(signed({"events": [event("lost1"), event("lost2", "terminate")]}))
    assert (status, answer["accepted"], sorted(answer["retry"])) == (503, [], ["lost1", "lost2"])
    monkeypatch.setattr(services.storage, "send", real_send)
    status, answer = await post(signed({"events": [event("lost1"), event("lost2", "terminate")]}))
    assert (status, answer["accepted"], answer["duplicates"]) == (202, ["lost1", "lost2"], [])
    assert await queued(services) == 2


async def test_a_delivery_still_in_flight_is_not_acknowledged_as_a_duplicate(services: Services) -> None:
    """A young claim that was never dispatched (another instance is on it, or died): 503 with Retry-After."""
    from licensing.services.hr_claims import event_claim_key  # noqa: PLC0415

    table = services.storage.table("HrEvents")
    await table.create_entity({**event_claim_key("busy"), "Status": "received", "ReceivedAt": datetime.now(UTC)})
    response: HttpResponse = await user_function(function_app.app, "hr_events")(signed(event("busy")))
    answer = json.loads(response.get_body())
    assert (response.status_code, answer["retry"], answer["duplicates"]) == (503, ["busy"], [])
    assert int(response.headers["Retry-After"]) > 0
    assert await queued(services) == 0


async def test_storage_that_hangs_gets_a_503_within_the_deadline(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue service that never answers (the SDK retrying for a minute) still gets HR an answer in time."""
    from licensing.services import hr_webhook  # noqa: PLC0415

    monkeypatch.setattr(hr_webhook, "DEADLINE_SECONDS", 0.5)
    hang = asyncio.Event()

    async def stuck(*_: Any, **__: Any) -> None:
        await hang.wait()

    monkeypatch.setattr(services.storage, "send", stuck)
    started = time.monotonic()
    status, answer = await asyncio.wait_for(post(signed(event("slow"))), timeout=10)
    assert (status, answer["retry"]) == (503, ["slow"])
    assert time.monotonic() - started < 5
    monkeypatch.undo()
    status, answer = await post(signed(event("slow")))
    assert (status, answer["accepted"]) == (202, ["slow"])  # the claim was given back, not left "in flight"


async def test_claim_left_by_a_crashed_request_is_taken_over_on_retry(services: Services) -> None:
    """A claim older than a minute that never got dispatched is dispatched by the next retry."""
    from licensing.services.hr_claims import event_claim_key  # noqa: PLC0415

    table = services.storage.table("HrEvents")
    stale = datetime.now(UTC) - timedelta(minutes=5)
    await table.create_entity({**event_claim_key("crashed"), "Status": "received", "ReceivedAt": stale})
    status, answer = await post(signed(event("crashed")))
    assert (status, answer["accepted"]) == (202, ["crashed"])
    assert await queued(services) == 1


async def test_a_terminate_cancels_a_held_future_hire(services: Services) -> None:
    """Hired for next month, gone before starting: the held hire is dropped, so nothing licenses them later."""
    start = datetime.now(UTC).date() + timedelta(days=40)
    await post(signed(event("early", startDate=start.isoformat())))
    assert len(await held(services.storage)) == 1
    status, _ = await post(signed(event("early-bye", "terminate", userPrincipalName="early@contoso.onmicrosoft.com")))
    assert status == 202
    assert await held(services.storage) == []


async def test_an_update_during_the_notice_period_does_not_cancel_the_scheduled_terminate(
    services: Services, tenant: EmulatedTenant
) -> None:
    """terminate (endDate next month) is held; an update HR sends meanwhile is applied; the terminate still runs."""
    upn = hire(tenant, "notice").user_principal_name
    await post(signed(event("n-hire", userPrincipalName=upn)))
    for body in await drain(services, LICENSE_REQUESTS_QUEUE):
        await invoke("onboard", body)
    end = datetime.now(UTC).date() + timedelta(days=30)
    await post(signed(event("n-bye", "terminate", userPrincipalName=upn, endDate=end.isoformat())))
    [(_, terminate)] = await held(services.storage)
    await post(signed(event("n-move", "update", userPrincipalName=upn, employeeType="Contractor")))
    [update] = await drain(services, LICENSE_REQUESTS_QUEUE)
    await invoke("onboard", update)
    user = tenant.state.user(upn)
    assert {a.sku_id: sorted(a.disabled_plans) for a in user.assignments} == {EMS: sorted([INTUNE_A, RMS_S_PREMIUM])}
    await invoke("onboard", terminate)  # its end date came: the timer released it, the queue delivers it
    assert user.assignments == []
    rows = {r.sku: r async for r in services.storage.statuses(user.id)}
    assert (rows["EMS"].outcome, rows["~leaver"].outcome) == ("removed", "removed")
