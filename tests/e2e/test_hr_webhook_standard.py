"""POST /api/hr/events signed with Standard Webhooks by the `standardwebhooks` package, against real Azurite."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions import HttpRequest, HttpResponse
from standardwebhooks import Webhook

import function_app
from licensing.core.errors import TransientError
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.core.signing import sign
from licensing.dev.localhost import user_function
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from tests.conftest import HR_SECRET
from tests.helpers import drain, hire, invoke, statuses

URL = "http://localhost/api/hr/events"
CURRENT = "whsec_" + base64.b64encode(b"std-current-key-5e1d-0123456789").decode()
PREVIOUS = "whsec_" + base64.b64encode(b"std-previous-key-8b4c-012345678").decode()


@pytest.fixture
def whsec(services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
    """The app configured with whsec_ secrets (current and previous), as a Standard Webhooks sender issues them."""
    monkeypatch.setattr(services, "settings", replace(services.settings, hr_webhook_secrets=(CURRENT, PREVIOUS)))
    return services


def event(event_id: str, kind: str = "hire", **extra: Any) -> dict[str, Any]:
    """An HR event as the HR platform sends it."""
    upn = f"{event_id}@contoso.onmicrosoft.com"
    return {"eventId": event_id, "type": kind, "employeeId": f"E-{event_id}", "userPrincipalName": upn, **extra}


def standard(
    payload: object, *, msg_id: str = "msg_1", secret: str | bytes = CURRENT, at: float | None = None
) -> HttpRequest:
    """A request exactly as `standardwebhooks.Webhook(secret).sign(...)` signs it."""
    body = json.dumps(payload)
    timestamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body),
    }
    return HttpRequest(method="POST", url=URL, headers=headers, params={}, body=body.encode())


def resigned(request: HttpRequest, **headers: str) -> HttpRequest:
    """The same request with some headers replaced (a blank value drops the header)."""
    merged = {k: v for k, v in {**dict(request.headers), **headers}.items() if v}
    return HttpRequest(method="POST", url=URL, headers=merged, params={}, body=request.get_body())


async def post(request: HttpRequest) -> tuple[int, Any]:
    """Call the registered hr_events function; decode its JSON answer."""
    response: HttpResponse = await user_function(function_app.app, "hr_events")(request)
    return response.status_code, json.loads(response.get_body())


async def queued(services: Services) -> int:
    """Messages on license-requests, visible or delayed."""
    return (await services.storage.queue(LICENSE_REQUESTS_QUEUE).get_queue_properties()).approximate_message_count or 0


async def test_a_library_signed_hire_is_queued_onboarded_and_verified(whsec: Services, tenant: EmulatedTenant) -> None:
    """A hire signed by standardwebhooks: 202, one onboarding request, the license assigned and then verified."""
    upn = hire(tenant, "std-hire").user_principal_name
    status, answer = await post(standard(event("std-1", userPrincipalName=upn, department="Sales")))
    assert (status, answer) == (202, {"accepted": ["std-1"], "duplicates": [], "scheduled": []})
    [request] = await drain(whsec, LICENSE_REQUESTS_QUEUE)
    assert (request["user"], request["requestId"], request["hrEvent"]) == (upn, "hr-std-1", "hire")
    await invoke("onboard", request)
    await invoke("verify", (await drain(whsec, LICENSE_VERIFY_QUEUE))[0])
    user = tenant.state.user(upn)
    assert (await statuses(whsec, user.id))["EMS"].outcome == "verified"


async def test_rotation_header_whose_second_signature_matches_the_previous_secret_is_accepted(whsec: Services) -> None:
    """The sender rotates: a signature by a key we do not have yet, then one by our previous secret -> 202."""
    upcoming = "whsec_" + base64.b64encode(b"std-upcoming-key-not-configured").decode()
    first = standard(event("rot"), secret=upcoming)
    second = standard(event("rot"), secret=PREVIOUS, at=int(first.headers["webhook-timestamp"]))
    both = f"{first.headers['webhook-signature']} {second.headers['webhook-signature']}"
    status, answer = await post(resigned(first, **{"webhook-signature": both}))
    assert (status, answer["accepted"]) == (202, ["rot"])
    assert await queued(whsec) == 1


async def test_a_plain_secret_verifies_as_its_utf8_bytes(services: Services) -> None:
    """HR_WEBHOOK_SECRET without whsec_ (the suite's plain secret): a sender signing with its raw bytes -> 202."""
    status, answer = await post(standard(event("plain"), secret=HR_SECRET.encode()))
    assert (status, answer["accepted"]) == (202, ["plain"])


def _tampered() -> HttpRequest:
    good = standard(event("t"))
    body = good.get_body().replace(b"E-t", b"E-x")
    return HttpRequest(method="POST", url=URL, headers=dict(good.headers), params={}, body=body)


def _v1a_only() -> HttpRequest:
    good = standard(event("x"))
    return resigned(good, **{"webhook-signature": good.headers["webhook-signature"].replace("v1,", "v1a,")})


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: standard(event("x"), secret="whsec_" + base64.b64encode(b"guess").decode()), "does not match"),
        (lambda: standard(event("x"), at=time.time() - 301), "s old"),
        (lambda: standard(event("x"), at=time.time() + 120), "in the future"),
        (_tampered, "does not match"),
        (_v1a_only, "no v1 signature"),
        (lambda: resigned(standard(event("x")), **{"webhook-signature": ""}), "missing webhook-signature header"),
        (lambda: resigned(standard(event("x")), **{"webhook-id": ""}), "missing webhook-id header"),
        (lambda: resigned(standard(event("x")), **{"webhook-timestamp": ""}), "missing webhook-timestamp header"),
        (lambda: resigned(standard(event("x")), **{"X-Signature": "ab" * 32}), "use one"),
        (lambda: standard(event("x"), msg_id="msg 1"), "webhook-id must be 1 to 256 printable ASCII"),
        (lambda: standard(event("x"), msg_id="m" * 300), "webhook-id must be 1 to 256 printable ASCII"),
    ],
    ids=[
        "wrong-secret",
        "stale",
        "future",
        "tampered-body",
        "v1a-only",
        "no-signature",
        "no-id",
        "no-timestamp",
        "both-schemes",
        "id-with-space",
        "id-too-long",
    ],
)
async def test_bad_standard_requests_get_401_naming_the_problem_and_nothing_is_queued(
    whsec: Services, make: Any, reason: str
) -> None:
    """Every failure is a 401 whose error says why; nothing reaches the queue or the dedupe table."""
    status, answer = await post(make())
    assert status == 401
    assert reason in answer["error"]
    assert await queued(whsec) == 0
    assert [row async for row in whsec.storage.table("HrEvents").list_entities()] == []


async def test_header_names_are_case_insensitive(whsec: Services) -> None:
    """Webhook-Id / WEBHOOK-TIMESTAMP / Webhook-Signature as some proxies spell them: still Standard, still 202."""
    request = standard(event("case"))
    spelled = {
        "Webhook-Id": "webhook-id",
        "WEBHOOK-TIMESTAMP": "webhook-timestamp",
        "Webhook-Signature": "webhook-signature",
    }
    headers = {"Content-Type": "application/json", **{new: request.headers[old] for new, old in spelled.items()}}
    status, _ = await post(HttpRequest(method="POST", url=URL, headers=headers, params={}, body=request.get_body()))
    assert status == 202


async def test_a_redelivered_webhook_id_is_a_duplicate_whatever_its_body(whsec: Services) -> None:
    """Same webhook-id again, identical or re-serialised with other content: 202, all duplicates, nothing queued."""
    assert (await post(standard(event("d1"), msg_id="msg_dup")))[0] == 202
    status, answer = await post(standard(event("d1"), msg_id="msg_dup"))
    assert (status, answer["accepted"], answer["duplicates"]) == (202, [], ["d1"])
    status, answer = await post(standard({"events": [event("d1"), event("d2")]}, msg_id="msg_dup"))
    assert (status, answer["accepted"], answer["duplicates"]) == (202, [], ["d1", "d2"])
    assert await queued(whsec) == 1


async def test_a_new_webhook_id_carrying_a_known_event_id_is_still_a_duplicate(whsec: Services) -> None:
    """eventId keeps its promise across deliveries: an old hire replayed under a new webhook-id queues nothing."""
    assert (await post(standard(event("e1"), msg_id="msg_a")))[0] == 202
    status, answer = await post(standard({"events": [event("e1"), event("e2")]}, msg_id="msg_b"))
    assert (status, answer["accepted"], answer["duplicates"]) == (202, ["e2"], ["e1"])
    assert await queued(whsec) == 2


async def test_our_own_scheme_keeps_working_next_to_whsec_secrets(whsec: Services) -> None:
    """X-Signature with the whsec_ setting used verbatim as its key: 202, as before."""
    body = json.dumps(event("ours")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Timestamp": timestamp,
        "X-Signature": sign(CURRENT, timestamp, body),
    }
    status, answer = await post(HttpRequest(method="POST", url=URL, headers=headers, params={}, body=body))
    assert (status, answer["accepted"]) == (202, ["ours"])


async def test_a_delivery_whose_dispatch_failed_is_processed_by_the_retry(
    whsec: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage fails after the claims: 503; the sender's retry of the same webhook-id queues both (no early ack)."""
    real_send = whsec.storage.send

    async def broken(*_: Any, **__: Any) -> None:
        raise TransientError("storage failed to send a message: ServiceRequestError")

    monkeypatch.setattr(whsec.storage, "send", broken)
    payload = {"events": [event("f1"), event("f2", "terminate")]}
    status, answer = await post(standard(payload, msg_id="msg_fail"))
    assert (status, answer["accepted"], sorted(answer["retry"])) == (503, [], ["f1", "f2"])
    monkeypatch.setattr(whsec.storage, "send", real_send)
    status, answer = await post(standard(payload, msg_id="msg_fail"))
    assert (status, answer["accepted"], answer["duplicates"]) == (202, ["f1", "f2"], [])
    assert await queued(whsec) == 2
    status, answer = await post(standard(payload, msg_id="msg_fail"))
    assert (status, answer["duplicates"]) == (202, ["f1", "f2"])


async def test_storage_that_hangs_gets_a_503_in_time_and_the_webhook_id_is_given_back(
    whsec: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue that never answers: 503 within the deadline; the re-delivery of that webhook-id is then processed."""
    from licensing.services import hr_webhook  # noqa: PLC0415

    monkeypatch.setattr(hr_webhook, "DEADLINE_SECONDS", 0.5)
    real_send, hang = whsec.storage.send, asyncio.Event()

    async def stuck(*_: Any, **__: Any) -> None:
        await hang.wait()

    monkeypatch.setattr(whsec.storage, "send", stuck)
    request = standard(event("slow"), msg_id="msg_slow")
    status, answer = await asyncio.wait_for(post(request), timeout=10)
    assert (status, answer["retry"]) == (503, ["slow"])
    monkeypatch.setattr(whsec.storage, "send", real_send)
    status, answer = await post(request)
    assert (status, answer["accepted"]) == (202, ["slow"])  # both claims were released, not left "in flight"
    assert await queued(whsec) == 1


async def test_concurrent_deliveries_of_one_webhook_id_queue_it_once(whsec: Services) -> None:
    """Five identical deliveries at once: one acceptance; the rest are duplicates or 503 retry, never early acks."""
    request = standard(event("race"), msg_id="msg_race")
    answers = await asyncio.gather(*(post(request) for _ in range(5)))
    assert sum(1 for _, a in answers if a["accepted"]) == 1
    for status, answer in answers:
        assert (status, tuple(answer.get("retry", ()))) in {(202, ()), (503, ("race",))}
    assert await queued(whsec) == 1


async def test_a_webhook_id_still_in_flight_is_answered_503_not_duplicate(whsec: Services) -> None:
    """A young, undispatched webhook-id claim (another instance is on it): 503 with Retry-After, nothing queued."""
    from licensing.services.hr_claims import webhook_claim_key  # noqa: PLC0415

    table = whsec.storage.table("HrEvents")
    key = webhook_claim_key("msg_busy")
    await table.create_entity({**key, "Status": "received", "ReceivedAt": datetime.now(UTC)})
    response: HttpResponse = await user_function(function_app.app, "hr_events")(standard(event("b"), msg_id="msg_busy"))
    answer = json.loads(response.get_body())
    assert (response.status_code, answer["retry"], answer["duplicates"]) == (503, ["b"], [])
    assert int(response.headers["Retry-After"]) > 0
    await table.update_entity({**key, "ReceivedAt": datetime.now(UTC) - timedelta(minutes=5)})
    status, answer = await post(standard(event("b"), msg_id="msg_busy"))
    assert (status, answer["accepted"]) == (202, ["b"])  # a claim left by a crashed request is taken over
    assert await queued(whsec) == 1


async def test_a_whsec_setting_that_is_not_base64_is_a_503_naming_the_setting(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken whsec_ previous secret: Standard requests get a 503 naming it (no traceback, no value logged)."""
    broken = "whsec_brokenmarker!!"
    monkeypatch.setattr(services, "settings", replace(services.settings, hr_webhook_secrets=(CURRENT, broken)))
    status, answer = await post(standard(event("cfg")))
    assert status == 503
    assert "HR_WEBHOOK_SECRET_PREVIOUS" in answer["error"]
    assert "brokenmarker" not in answer["error"]
    assert "HR_WEBHOOK_SECRET_PREVIOUS" in caplog.text  # the operator sees which setting to fix
    assert "brokenmarker" not in caplog.text
    assert "Traceback" not in caplog.text
    assert await queued(services) == 0


async def test_whsec_secrets_and_signatures_never_reach_logs_or_tables(
    whsec: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Good and bad Standard requests with DEBUG logging: neither key nor signature appears in logs or tables."""
    caplog.set_level("DEBUG")
    good = standard(event("leak1"))
    bad = standard(event("leak2"), secret="whsec_" + base64.b64encode(b"attacker-guess").decode())
    await post(good)
    await post(bad)
    signatures = [r.headers["webhook-signature"] for r in (good, bad)]
    markers = [CURRENT, PREVIOUS, CURRENT.removeprefix("whsec_"), *signatures, *(s[3:] for s in signatures)]
    for marker in markers:
        assert marker not in caplog.text
        for table in ("HrEvents", "LicenseEvents", "LicenseStatus"):
            async for entity in whsec.storage.table(table).list_entities():
                assert marker not in json.dumps(entity, default=str)
    assert "signature rejected" in caplog.text


@pytest.mark.parametrize("msg_id", ["/" * 256, "%" * 171, "a" * 256, "it's&100%<x>"])
async def test_webhook_ids_that_grow_when_made_key_safe_are_claimed_and_deduplicated(
    whsec: Services, msg_id: str
) -> None:
    """The longest ids the check allows, even of characters a table key must escape, are accepted once, then dupes."""
    name = f"long-{len(msg_id)}-{ord(msg_id[0])}"
    status, answer = await post(standard(event(name), msg_id=msg_id))
    assert status == 202, answer
    status, answer = await post(standard(event(f"{name}-again"), msg_id=msg_id))
    assert (status, answer["duplicates"]) == (202, [f"{name}-again"])
    assert await queued(whsec) == 1


HOSTILE_BODIES = {
    "nested 100,000 deep": '{"events": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 5,000-digit number": '{"eventId": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("what", sorted(HOSTILE_BODIES))
async def test_a_standard_signed_body_json_cannot_read_is_a_400_and_its_webhook_id_stays_unclaimed(
    whsec: Services, what: str
) -> None:
    """Signed right, unreadable body: 400 naming it, nothing queued; the webhook-id is not used up by the refusal."""
    body = HOSTILE_BODIES[what]
    at = datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": "msg_hostile",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(CURRENT).sign("msg_hostile", at, body),
    }
    status, answer = await post(HttpRequest(method="POST", url=URL, headers=headers, params={}, body=body.encode()))
    assert status == 400
    assert "not valid JSON" in answer["problems"][0]["msg"]
    assert await queued(whsec) == 0
    status, answer = await post(standard(event("after-hostile"), msg_id="msg_hostile"))
    assert (status, answer["accepted"]) == (202, ["after-hostile"])


async def test_storage_failing_after_the_events_but_before_the_webhook_id_is_marked_queues_nothing_twice(
    whsec: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events are queued, marking the webhook-id fails: 202; re-deliveries wait (503), then find duplicates."""
    from licensing.services import hr_claims  # noqa: PLC0415

    real_table = whsec.storage.table

    class MarkFails:
        """HrEvents whose webhook-id rows cannot be updated (the mark after the events were queued)."""

        def __init__(self, name: str) -> None:
            self._table = real_table(name)

        def __getattr__(self, attribute: str) -> Any:  # everything else as the real client
            return getattr(self._table, attribute)

        async def update_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
            if entity["PartitionKey"].startswith("w") and entity.get("Status") == "dispatched":
                raise TransientError("storage failed to mark the webhook-id")
            return await self._table.update_entity(entity, **kwargs)

    monkeypatch.setattr(whsec.storage, "table", MarkFails)
    request = standard(event("marked"), msg_id="msg_unmarked")
    status, answer = await post(request)
    assert (status, answer["accepted"]) == (202, ["marked"])
    monkeypatch.setattr(whsec.storage, "table", real_table)
    status, answer = await post(request)
    assert (status, answer["retry"]) == (503, ["marked"])  # the claim looks in flight: never an early duplicate
    monkeypatch.setattr(hr_claims, "IN_FLIGHT", timedelta(0))  # later: the claim is stale and taken over
    status, answer = await post(request)
    assert (status, answer["duplicates"]) == (202, ["marked"])
    assert await queued(whsec) == 1
