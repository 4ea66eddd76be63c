"""The queue functions registered in function_app.py, called with real QueueMessages against Azurite + tenant."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from licensing.core.errors import TransientError
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.core.records import UNIDENTIFIED, AuditEvent
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from tests.helpers import ASSIGN, EMS, INTUNE_A, drain, hire, invoke, request, statuses


async def test_onboard_assigns_ems_with_intune_disabled_and_schedules_verification(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A new hire gets EMS with exactly INTUNE_A disabled; an assigned row, an audit event and a verify message."""
    user = hire(tenant, "ada")
    await invoke("onboard", request(user.user_principal_name, request_id="r-ada"))
    [held] = user.assignments
    assert (held.sku_id, held.disabled_plans, held.assigned_by_group) == (EMS, [INTUNE_A], None)
    rows = await statuses(services, user.id)
    assert rows["EMS"].outcome == "assigned"
    assert rows["EMS"].disabled_plans == ("INTUNE_A",)
    events = await services.storage.events(user.id)
    assert [e.kind for e in events] == ["LicenseAssigned", "AssignmentRequested"]
    assert (events[0].before, events[0].after, events[0].rule) == (None, ("INTUNE_A",), "everyone")
    assert (events[1].before, events[1].after) == (None, ("INTUNE_A",))
    [verify] = await drain(services, LICENSE_VERIFY_QUEUE)
    assert verify["userId"] == user.id
    assert verify["licenses"] == [
        {"skuId": EMS, "partNumber": "EMS", "disabledPlans": [INTUNE_A], "disabledPlanNames": ["INTUNE_A"]}
    ]


async def test_verify_records_every_plan_status_after_pending_settles(
    services: Services, tenant: EmulatedTenant
) -> None:
    """Settling plans (PendingInput) are re-checked via a delayed message until Success; the row lists every plan."""
    tenant.state.strictness.settling_status = "PendingInput"  # what Graph shows while the service has not confirmed
    tenant.state.provisioning_delay = 3600
    user = hire(tenant, "grace")
    await invoke("onboard", request(user.user_principal_name))
    [first] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", first)
    pending = (await statuses(services, user.id))["EMS"]
    assert pending.outcome == "pending"
    assert pending.plan_statuses["AAD_PREMIUM"] == "PendingInput"
    assert pending.plan_statuses["INTUNE_A"] == "Disabled"
    [again] = await drain(services, LICENSE_VERIFY_QUEUE)
    assert again["attempt"] == 1
    tenant.state.provisioning_delay = 0
    await invoke("verify", again)
    done = (await statuses(services, user.id))["EMS"]
    assert done.outcome == "verified"
    assert done.plan_statuses == {
        "AAD_PREMIUM": "Success", "ADALLOM_S_DISCOVERY": "Success", "EXCHANGE_S_FOUNDATION": "Success",
        "INTUNE_A": "Disabled", "MFA_PREMIUM": "Success", "RMS_S_ENTERPRISE": "Success", "RMS_S_PREMIUM": "Success",
    }  # fmt: skip
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []


async def test_duplicate_delivery_sends_no_second_assignment(services: Services, tenant: EmulatedTenant) -> None:
    """The same request twice ends in the same state with one assignLicense and one verification chain."""
    user = hire(tenant, "linus")
    body = request(user.user_principal_name, request_id="dup")
    await invoke("onboard", body)
    await invoke("onboard", body, dequeue_count=2)
    assert tenant.state.requests[ASSIGN] == 1
    kinds = [e.kind for e in await services.storage.events(user.id)]
    assert kinds == ["AlreadyCompliant", "LicenseAssigned", "AssignmentRequested"]
    assert len(await drain(services, LICENSE_VERIFY_QUEUE)) == 1


async def test_compliant_user_without_a_verified_row_gets_verified(services: Services, tenant: EmulatedTenant) -> None:
    """A user already licensed by hand (no status row yet) is checked once, not assigned again."""
    user = hire(tenant, "byhand")
    tenant.state.assign_license(user.id, [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], [])
    await invoke("onboard", request(user.user_principal_name))
    [message] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", message)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"
    await invoke("onboard", request(user.user_principal_name))
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []
    assert tenant.state.requests[ASSIGN] == 0


async def test_assignment_whose_recording_failed_keeps_its_audit_trail(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Graph accepted the write but storage failed after it: the redelivery is a no-op, the change stays audited."""
    user = hire(tenant, "gap")
    real_put = services.storage.put_status

    async def storage_down(record: object) -> None:
        raise TransientError("storage failed to write status: ServiceResponseError")

    monkeypatch.setattr(services.storage, "put_status", storage_down)
    body = request(user.user_principal_name, request_id="r-gap")
    with pytest.raises(TransientError):
        await invoke("onboard", body)
    monkeypatch.setattr(services.storage, "put_status", real_put)
    await invoke("onboard", body, dequeue_count=2)
    assert tenant.state.requests[ASSIGN] == 1
    events = await services.storage.events(user.id)
    requested = [e for e in events if e.kind == "AssignmentRequested"]
    assert [(e.request_id, e.before, e.after) for e in requested] == [("r-gap", None, ("INTUNE_A",))]
    assert "AlreadyCompliant" in [e.kind for e in events]
    # The first attempt's check went out before its record failed; the redelivery finds no row and sends one
    # more (checks are idempotent). Either way the license ends verified.
    checks = await drain(services, LICENSE_VERIFY_QUEUE)
    assert len(checks) == 2
    for check in checks:
        await invoke("verify", check)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"


async def test_storage_failing_after_the_assigned_row_still_leaves_a_check_behind_it(
    services: Services, tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "assigned" row is written, then storage fails: the redelivery sends no check, one is already queued."""
    user = hire(tenant, "halfway")
    real_append = services.storage.append_event

    async def fail_after_the_row(event: AuditEvent) -> None:
        if event.kind == "LicenseAssigned":
            raise TransientError("storage failed to append event: ServiceResponseError")
        await real_append(event)

    monkeypatch.setattr(services.storage, "append_event", fail_after_the_row)
    body = request(user.user_principal_name, request_id="r-halfway")
    with pytest.raises(TransientError):
        await invoke("onboard", body)
    assert (await statuses(services, user.id))["EMS"].outcome == "assigned"
    monkeypatch.setattr(services.storage, "append_event", real_append)
    await invoke("onboard", body, dequeue_count=2)
    [check] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", check)
    assert (await statuses(services, user.id))["EMS"].outcome == "verified"
    assert tenant.state.requests[ASSIGN] == 1


async def test_success_clears_an_earlier_request_level_failure(services: Services, tenant: EmulatedTenant) -> None:
    """A rejected row from an earlier attempt does not linger next to the verified license."""
    tenant.state.strictness.usage_location_lag = 0  # replication lag has tests of its own (test_graph_as_documented)
    user = hire(tenant, "later", location=None)
    services.settings = replace(services.settings, set_usage_location=False)
    await invoke("onboard", request(user.user_principal_name))
    assert (await statuses(services, user.id))["-"].outcome == "rejected"
    services.settings = replace(services.settings, set_usage_location=True)
    await invoke("onboard", request(user.user_principal_name))
    assert set(await statuses(services, user.id)) == {"EMS"}


async def test_usage_location_is_set_from_policy_default_before_assigning(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A user without usageLocation gets the policy's default (US) first, then the license."""
    tenant.state.strictness.usage_location_lag = 0  # replication lag has tests of its own (test_graph_as_documented)
    user = hire(tenant, "nolo", location=None)
    await invoke("onboard", request(user.user_principal_name))
    assert user.usage_location == "US"
    assert user.assignments
    kinds = [e.kind for e in await services.storage.events(user.id)]
    assert kinds == ["LicenseAssigned", "AssignmentRequested", "UsageLocationSet"]


async def test_request_usage_location_wins_over_policy_default(services: Services, tenant: EmulatedTenant) -> None:
    """The request's usageLocation (from HR) is the one set."""
    user = hire(tenant, "hr", location=None)
    await invoke("onboard", request(user.user_principal_name, usageLocation="DE"))
    assert user.usage_location == "DE"


async def test_teacher_gets_intune_edu_and_its_companion_in_one_call(
    services: Services, tenant: EmulatedTenant
) -> None:
    """Intune for Education and Intune A Direct are assigned together."""
    user = hire(tenant, "teach", department="Teachers", company_name="Contoso School")
    await invoke("onboard", request(user.user_principal_name))
    assert tenant.state.requests[ASSIGN] == 1
    parts = {tenant.state.skus[a.sku_id].part_number for a in user.assignments}
    assert parts == {"INTUNE_EDU", "INTUNE_A_D"}


async def test_no_free_seats_is_blocked_and_rechecked_later_not_poisoned(
    services: Services, tenant: EmulatedTenant
) -> None:
    """EMSPREMIUM has no free seat: the user is blocked, the request re-enqueued, then given up after the limit."""
    user = hire(tenant, "boss", department="Executive")
    body = request(user.user_principal_name, request_id="r-boss")
    await invoke("onboard", body)
    row = (await statuses(services, user.id))["EMSPREMIUM"]
    assert row.outcome == "blocked"
    assert "no free seats for EMSPREMIUM" in row.reason
    assert "re-checking in" in row.reason
    [retry] = await drain(services, LICENSE_REQUESTS_QUEUE)
    assert retry["attempt"] == 1
    await invoke("onboard", retry)
    final = (await statuses(services, user.id))["EMSPREMIUM"]
    assert final.outcome == "blocked"
    assert "stopped re-checking after 2 attempts" in final.reason
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []
    assert user.assignments == []


async def test_unknown_user_is_retried_for_replication_lag_then_rejected(services: Services) -> None:
    """A 404 user is retried once (new accounts replicate late), then recorded rejected with the reason."""
    await invoke("onboard", request("ghost@contoso.onmicrosoft.com", request_id="r-ghost"))
    assert await statuses(services, "ghost@contoso.onmicrosoft.com") == {}
    [deferred] = await services.storage.events("ghost@contoso.onmicrosoft.com")
    assert (deferred.kind, deferred.request_id) == ("RequestDeferred", "r-ghost")
    assert "retry 2 of 2" in deferred.detail
    [retry] = await drain(services, LICENSE_REQUESTS_QUEUE)
    await invoke("onboard", retry)
    final = (await statuses(services, "ghost@contoso.onmicrosoft.com"))["-"]
    assert final.outcome == "rejected"
    assert "does not exist in the tenant" in final.reason
    assert "Request_ResourceNotFound" in final.reason
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (json.dumps({"source": "hr", "requestId": "r-x"}).encode(), "user: Field required"),
        (json.dumps({"user": "a@b", "source": "hr", "requestId": "big", "attributes": {"x": "y" * 200}}).encode()
         * 200, "the limit is 32,768 bytes"),
    ],
    ids=["malformed-json", "not-utf8", "missing-user", "oversize"],
)  # fmt: skip
async def test_bad_messages_are_recorded_rejected_and_completed(services: Services, body: bytes, expected: str) -> None:
    """Bad input never raises (so it never loops) and leaves a rejected row saying why and what."""
    await invoke("onboard", body)
    rows = [r async for r in services.storage.statuses(UNIDENTIFIED)]
    [row] = rows
    assert row.outcome == "rejected"
    assert expected in row.reason
    assert "message " in row.reason
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


async def test_invalid_message_naming_a_user_is_recorded_under_that_user(services: Services) -> None:
    """Even a message that fails validation says whose it was."""
    await invoke("onboard", {"user": "eve@contoso.onmicrosoft.com", "source": "fax", "requestId": "r-eve"})
    row = (await statuses(services, "eve@contoso.onmicrosoft.com"))["-"]
    assert (row.outcome, row.request_id) == ("rejected", "r-eve")
    assert "source" in row.reason


async def test_unknown_sku_in_policy_is_rejected_with_the_tenant_skus(
    services: Services, tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """A policy naming a SKU the tenant lacks rejects the request and lists what the tenant has."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"rules": [{"name": "all", "match": "all", "licenses": [{"sku": "SPE_E5"}]}]}))
    services.settings = replace(services.settings, policy_path=policy)
    services._policy = None  # the root caches the policy per process; a new file means a new process
    user = hire(tenant, "pol")
    await invoke("onboard", request(user.user_principal_name))
    row = (await statuses(services, user.id))["-"]
    assert row.outcome == "rejected"
    assert "'SPE_E5', which this tenant does not subscribe to; the tenant has: EMS, EMSPREMIUM" in row.reason
    assert tenant.state.requests[ASSIGN] == 0


async def test_transient_graph_failure_raises_and_the_poison_handler_says_why(
    services: Services, tenant: EmulatedTenant
) -> None:
    """503s past the SDK's retries raise (queue redelivers); once poisoned, the record carries the last error."""
    user = hire(tenant, "flaky")
    tenant.faults.unavailable_rate = 1.0
    tenant.faults.retry_after = 0
    body = request(user.user_principal_name, request_id="r-flaky")
    with pytest.raises(TransientError, match="503"):
        await invoke("onboard", body, dequeue_count=5)
    await invoke("onboard_poison", body)
    row = (await statuses(services, user.user_principal_name))["-"]
    assert row.outcome == "failed"
    assert "gave up after the queue's maximum deliveries on license-requests" in row.reason
    assert "delivery 5: Graph refused to read user" in row.reason
    assert user.assignments == []


async def test_verify_falls_back_to_assigned_plans_when_license_details_is_forbidden(
    services: Services, tenant: EmulatedTenant
) -> None:
    """With licenseDetails refused (403), the statuses come from assignedPlans and still verify."""
    user = hire(tenant, "fallback")
    await invoke("onboard", request(user.user_principal_name))
    tenant.faults.license_details_forbidden = True
    [message] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", message)
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "verified"
    assert row.plan_statuses["INTUNE_A"] == "Disabled"
    assert row.plan_statuses["AAD_PREMIUM"] == "Success"


async def test_plan_in_error_fails_verification_with_the_plan_named(services: Services, tenant: EmulatedTenant) -> None:
    """A plan stuck in Error is recorded failed, naming it, and not re-checked."""
    user = hire(tenant, "err")
    tenant.state.force_status(user.id, "RMS_S_PREMIUM", "Error")
    await invoke("onboard", request(user.user_principal_name))
    [message] = await drain(services, LICENSE_VERIFY_QUEUE)
    await invoke("verify", message)
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "failed"
    assert "RMS_S_PREMIUM is Error (expected Success)" in row.reason
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []


async def test_pending_past_the_deadline_fails(services: Services, tenant: EmulatedTenant) -> None:
    """A plan still pending at the deadline is recorded failed instead of re-checked forever."""
    tenant.state.strictness.settling_status = "PendingInput"
    tenant.state.provisioning_delay = 3600
    user = hire(tenant, "slow")
    await invoke("onboard", request(user.user_principal_name))
    [message] = await drain(services, LICENSE_VERIFY_QUEUE)
    message["deadline"] = "2000-01-01T00:00:00+00:00"
    await invoke("verify", message)
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "failed"
    assert "still pending at the deadline" in row.reason
    assert await drain(services, LICENSE_VERIFY_QUEUE) == []


async def test_usage_location_writing_off_rejects_instead_of_patching(
    services: Services, tenant: EmulatedTenant
) -> None:
    """With LICENSING_SET_USAGE_LOCATION=false the app never PATCHes users; it says what to do instead."""
    services.settings = replace(services.settings, set_usage_location=False)
    user = hire(tenant, "readonly", location=None)
    await invoke("onboard", request(user.user_principal_name))
    row = (await statuses(services, user.id))["-"]
    assert row.outcome == "rejected"
    assert "LICENSING_SET_USAGE_LOCATION is off" in row.reason
    assert tenant.state.requests["PATCH /users/{id}"] == 0
    assert user.usage_location is None


async def test_graph_refusing_the_usage_location_is_recorded_failed_not_retried(
    services: Services, tenant: EmulatedTenant
) -> None:
    """HR sends "ZZ" (not an ISO country): Graph's 400 on PATCH is recorded failed and the message completes."""
    user = hire(tenant, "zz", location=None)
    await invoke("onboard", request(user.user_principal_name, usageLocation="ZZ"))
    row = (await statuses(services, user.id))["-"]
    assert row.outcome == "failed"
    assert "Graph refused to set usageLocation" in row.reason
    assert user.assignments == []
    assert await drain(services, LICENSE_REQUESTS_QUEUE) == []


async def test_user_deleted_before_verification_fails_the_check(services: Services, tenant: EmulatedTenant) -> None:
    """A user removed between assignment and verification is recorded failed with Graph's 404."""
    user = hire(tenant, "gone")
    await invoke("onboard", request(user.user_principal_name))
    [message] = await drain(services, LICENSE_VERIFY_QUEUE)
    del tenant.state.users[user.id]
    await invoke("verify", message)
    row = (await statuses(services, user.id))["EMS"]
    assert row.outcome == "failed"
    assert "Request_ResourceNotFound" in row.reason


async def test_broken_policy_file_is_retried_not_rejected(
    services: Services, tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """An unreadable policy fails every delivery (and finally poisons, with the reason) instead of rejecting joiners."""
    broken = tmp_path / "policy.json"
    broken.write_text("{oops")
    services.settings = replace(services.settings, policy_path=broken)
    services._policy = None
    user = hire(tenant, "waits")
    body = request(user.user_principal_name, request_id="r-waits")
    with pytest.raises(TransientError, match="policy file cannot be used"):
        await invoke("onboard", body, dequeue_count=5)
    await invoke("onboard_poison", body)
    row = (await statuses(services, user.user_principal_name))["-"]
    assert row.outcome == "failed"
    assert "policy.json is not valid JSON" in row.reason


async def test_verify_poison_records_the_user_and_the_last_error(services: Services, tenant: EmulatedTenant) -> None:
    """A verification message the queue gave up on becomes a failed row under the user's id."""
    user = hire(tenant, "vpoison")
    await invoke("onboard", request(user.user_principal_name, request_id="r-vp"))
    [message] = await drain(services, LICENSE_VERIFY_QUEUE)
    tenant.faults.unavailable_rate = 1.0
    tenant.faults.retry_after = 0
    with pytest.raises(TransientError):
        await invoke("verify", message, dequeue_count=5)
    await invoke("verify_poison", message)
    row = (await statuses(services, user.id))["-"]
    assert row.outcome == "failed"
    assert "license-verify" in row.reason
    assert "delivery 5: Graph refused to read licenseDetails" in row.reason
