"""Verify one assignment: every plan's provisioning status, re-checked with backoff until it settles."""

from __future__ import annotations

import logging
from datetime import timedelta

from licensing.composition import Services
from licensing.errors import InvalidRequest, PermanentError
from licensing.messages import LICENSE_VERIFY_QUEUE, VerifyRequest, parse_message
from licensing.onboarding import Handled
from licensing.recording import note_failed_attempt, record, reject_unreadable, retry_payload
from licensing.verification import ExpectedLicense, LicenseVerdict, verify_license

log = logging.getLogger(__name__)


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
        await note_failed_attempt(
            services,
            user_key=request.user_id.lower(),
            request_id=request.request_id,
            source=request.source,
            error=exc,
            delivery=delivery,
        )
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
            )
            for lic in request.licenses
        ]
    now = services.clock()
    pending = [v for v in verdicts if v.outcome == "pending"]
    next_check = 0
    if pending and now < request.deadline:
        settings = services.settings
        next_check = min(
            settings.verify_delay_seconds * 2**request.attempt,
            settings.verify_max_backoff_seconds,
            max(int((request.deadline - now).total_seconds()), 1),
        )
        await services.storage.send(LICENSE_VERIFY_QUEUE, retry_payload(request), delay_seconds=max(next_check, 1))
    for verdict, lic in zip(verdicts, request.licenses, strict=True):
        outcome, reason = verdict.outcome, verdict.reason
        if outcome == "pending":
            if next_check:
                reason = f"{reason}; next check in {next_check} s"
            else:
                outcome = "failed"
                reason = f"still pending at the deadline ({_age(request, services)}): {reason}"
        kind = {"verified": "AssignmentVerified", "pending": "AssignmentPending", "failed": "AssignmentFailed"}
        await record(
            services, user_key=request.user_id, upn=request.user_principal_name, outcome=outcome,
            kind=kind[outcome], reason=reason, request_id=request.request_id,  # type: ignore[arg-type]
            source=request.source, sku=lic.part_number, rule=request.rule, attempts=request.attempt + 1,
            disabled=lic.disabled_plan_names, plan_statuses=verdict.plan_statuses(),
        )  # fmt: skip
    summary = ", ".join(f"{v.part_number}={v.outcome}" for v in verdicts)
    log.info("verified %s: %s (request %s)", request.user_id, summary, request.request_id)
    worst = next((o for o in ("failed", "pending") if any(v.outcome == o for v in verdicts)), "verified")
    return Handled(worst if worst != "pending" or next_check else "failed", summary)


def _age(request: VerifyRequest, services: Services) -> str:
    minutes = services.settings.verify_deadline_minutes
    return f"{timedelta(minutes=minutes)} after assignment"
