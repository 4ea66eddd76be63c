"""Verify one assignment: every plan's provisioning status, re-checked with backoff until it settles."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from licensing.adapters import telemetry
from licensing.adapters.storage import leases
from licensing.core.errors import InvalidRequest, PermanentError
from licensing.core.messages import VerifyLicense, VerifyRequest, parse_message
from licensing.core.outcomes import Decided, Noted, Subject
from licensing.core.planning import AssignmentPlan
from licensing.core.queues import LICENSE_VERIFY_QUEUE
from licensing.core.records import LEAVER, EventKind, Outcome, stale_check
from licensing.core.verification import ExpectedLicense, LicenseVerdict, verify_license
from licensing.services.context import Services
from licensing.services.recording import (
    Handled,
    about,
    come_back,
    note_failed_attempt,
    record,
    reject_unreadable,
    retry_payload,
)

log = logging.getLogger(__name__)
_KIND: dict[Outcome, EventKind] = {
    "verified": "AssignmentVerified",
    "pending": "AssignmentPending",
    "action-required": "AdminActionRequired",
    "failed": "AssignmentFailed",
}


async def schedule_verification(services: Services, subject: Subject, plan: AssignmentPlan, *, delay: int) -> None:
    """Enqueue the first check of the plan's managed licenses, ``delay`` seconds from now, with the deadline."""
    deadline = services.clock() + timedelta(minutes=services.settings.verify_deadline_minutes)
    payload = {
        "userId": subject.user_key,
        "userPrincipalName": subject.upn,
        "requestId": subject.request_id,
        "source": subject.source,
        "rule": plan.rule,
        "licenses": [
            {
                "skuId": d.sku_id,
                "partNumber": d.part_number,
                "disabledPlans": sorted(d.disabled_plan_ids),
                "disabledPlanNames": list(d.disabled_plan_names),
            }
            for d in plan.managed
        ],
        "deadline": deadline.isoformat(),
        "attempt": 0,
    }
    await services.storage.send(LICENSE_VERIFY_QUEUE, payload, delay_seconds=delay)


async def verify(body: str, services: Services, *, message_id: str = "", delivery: int = 1) -> Handled:
    """Handle one license-verify message. Transient failures raise (the queue redelivers)."""
    try:
        request = parse_message(body, VerifyRequest)
    except InvalidRequest as exc:
        await reject_unreadable(services, body, exc.message, message_id=message_id, source="license-verify")
        return Handled("rejected", exc.message)
    try:
        return await _verify(request, services)
    except Exception as exc:
        subject = about(request).as_user(request.user_id.lower(), request.user_principal_name)
        await note_failed_attempt(services, subject, error=exc, delivery=delivery)
        raise


async def _verify(request: VerifyRequest, services: Services) -> Handled:
    try:
        observed = {o.sku_id: o for o in await services.graph.plan_states(request.user_id)}
    except PermanentError as exc:  # the user was deleted, or the app lost its read permission
        verdicts = [
            LicenseVerdict(lic.sku_id.lower(), lic.part_number, "failed", (), exc.message) for lic in request.licenses
        ]
    else:
        verdicts = [
            verify_license(
                ExpectedLicense(lic.sku_id.lower(), lic.part_number, frozenset(p.lower() for p in lic.disabled_plans)),
                observed.get(lic.sku_id.lower()),
                user=request.user_principal_name,
            )
            for lic in request.licenses
        ]
    holder = f"verify:{request.request_id}:{uuid.uuid4().hex[:8]}"
    lease = await leases.take(services.storage, request.user_id, holder=holder, now=services.clock())
    if lease is None:
        # An onboarding (or another check) is writing this user now; a verdict recorded in the middle of it could
        # be dated after the new assignment's row and hide it. Come back in a moment, attempt unchanged.
        return await come_back(services, LICENSE_VERIFY_QUEUE, request, f"user {request.user_id} is being written")
    try:
        return await _record(request, verdicts, services)
    finally:
        await lease.give_back()


async def _record(request: VerifyRequest, verdicts: list[LicenseVerdict], services: Services) -> Handled:
    """Record each verdict whose assignment is still the SKU's (under the user's lease), ignore stale ones."""
    subject = about(request)
    rows = {r.sku: r async for r in services.storage.statuses(request.user_id)}
    current: list[tuple[LicenseVerdict, VerifyLicense]] = []
    for verdict, lic in zip(verdicts, request.licenses, strict=True):
        stale = stale_check(
            rows.get(lic.part_number),
            left=LEAVER in rows,
            request_id=request.request_id,
            disabled=lic.disabled_plan_names,
        )
        if stale is None:
            current.append((verdict, lic))
            continue
        reason = f"stale check of request {request.request_id} ignored: {stale}"
        await record(services, Noted(subject, "CheckIgnored", reason, sku=lic.part_number, rule=request.rule))
    if not current:  # nothing left to check: the chain stops here
        return Handled("skipped", f"stale check of request {request.request_id} ignored")
    now = services.clock()
    next_check = 0
    # Only a settling plan (PendingInput) is checked again; action-required waits for an admin, who re-checks.
    if any(v.outcome == "pending" for v, _ in current) and now < request.deadline:
        settings = services.settings
        next_check = max(
            1,
            min(
                settings.verify_delay_seconds * 2**request.attempt,
                settings.verify_max_backoff_seconds,
                int((request.deadline - now).total_seconds()),
            ),
        )
    for verdict, lic in current:
        outcome, reason = verdict.outcome, verdict.reason
        if outcome == "pending":
            if next_check:
                reason = f"{reason}; next check in {next_check} s"
            else:
                outcome = "failed"
                reason = f"still pending at the deadline ({_age(services)}): {reason}"
        decided = Decided(
            subject,
            outcome,
            _KIND[outcome],
            reason,
            lic.part_number,
            request.rule,
            lic.disabled_plan_names,
            verdict.plan_statuses(),
            plan_source=verdict.source,
        )
        await record(services, decided)
        telemetry.verified(outcome=outcome, sku=lic.part_number)
    if next_check:  # sent after recording: a failed write redelivers this message rather than forking a chain
        licenses = [lic.model_dump(mode="json", by_alias=True) for _, lic in current]  # stale ones drop out
        payload = retry_payload(request, licenses=licenses)
        await services.storage.send(LICENSE_VERIFY_QUEUE, payload, delay_seconds=next_check)
    verdicts = [v for v, _ in current]
    summary = ", ".join(f"{v.part_number}={v.outcome}" for v in verdicts)
    log.info("verified %s: %s (request %s)", request.user_id, summary, request.request_id)
    if any(v.outcome == "failed" for v in verdicts):
        return Handled("failed", summary)
    if any(v.outcome == "action-required" for v in verdicts):
        return Handled("action-required", summary)
    if any(v.outcome == "pending" for v in verdicts):
        return Handled("pending" if next_check else "failed", summary)  # still pending at the deadline: failed
    return Handled("verified", summary)


def _age(services: Services) -> str:
    return f"{timedelta(minutes=services.settings.verify_deadline_minutes)} after assignment"
