"""Onboard one user: read, plan, set usage location, check seats, assign, schedule verification."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from licensing.composition import Services
from licensing.errors import (
    InvalidRequest,
    PermanentError,
    PolicyError,
    SeatsExhausted,
    UsageLocationMissing,
    UserNotFound,
)
from licensing.messages import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE, OnboardRequest, parse_message
from licensing.model import Catalog, UserFacts
from licensing.planning import AssignmentPlan, DesiredLicense, plan_assignment
from licensing.recording import backoff, note_failed_attempt, record, reject_unreadable, retry_payload
from licensing.records import AuditEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Handled:
    """How a message ended: the outcome word and a reason for the log."""

    outcome: str
    reason: str


async def onboard(body: str, services: Services, *, message_id: str = "", delivery: int = 1) -> Handled:
    """Handle one license-requests message. Transient failures raise (the queue redelivers)."""
    try:
        request = parse_message(body, OnboardRequest)
    except InvalidRequest as exc:
        await reject_unreadable(services, body, exc.message, message_id=message_id, source="license-requests")
        return Handled("rejected", exc.message)
    try:
        return await _onboard(request, services)
    except PermanentError as exc:  # e.g. the app lacks a Graph permission: retrying cannot help
        await record(
            services, user_key=request.user.lower(), upn=request.user, outcome="failed", kind="AssignmentFailed",
            reason=exc.message, request_id=request.request_id, source=request.source, attempts=request.attempt + 1,
        )  # fmt: skip
        return Handled("failed", exc.message)
    except Exception as exc:
        await note_failed_attempt(
            services,
            user_key=request.user.lower(),
            request_id=request.request_id,
            source=request.source,
            error=exc,
            delivery=delivery,
        )
        raise


async def _onboard(request: OnboardRequest, services: Services) -> Handled:  # noqa: PLR0911  # one exit per outcome
    graph, settings = services.graph, services.settings
    try:
        user = await graph.get_user(request.user)
    except UserNotFound as exc:
        return await _user_missing(request, services, exc)
    try:
        catalog = await graph.catalog()
        plan = plan_assignment(
            user, services.policy(), catalog, attributes=request.attributes, usage_location=request.usage_location
        )
    except SeatsExhausted as exc:
        return await _blocked(request, user, services, exc)
    except (PolicyError, UsageLocationMissing) as exc:
        return await _rejected(request, user, services, exc.message)
    if plan.no_op:
        await _schedule_verify(request, user, plan, services, delay=0)
        await _note_compliant(request, user, plan, services)
        return Handled("compliant", f"{user.user_principal_name} already matches rule {plan.rule}")
    if plan.usage_location:
        if not settings.set_usage_location:
            return await _rejected(
                request, user, services,
                f"{user.user_principal_name} has no usage location and LICENSING_SET_USAGE_LOCATION is off; "
                "set usageLocation on the user or turn the setting on (needs User.ReadWrite.All)",
            )  # fmt: skip
        await graph.set_usage_location(user.id, plan.usage_location)
        await services.storage.append_event(
            AuditEvent(
                user.id, "UsageLocationSet", request.request_id, request.source, rule=plan.rule,
                detail=f"usageLocation set to {plan.usage_location}", at=services.clock(),
            )
        )  # fmt: skip
    try:
        await graph.assign(user.id, [(c.desired.sku_id, c.desired.disabled_plan_ids) for c in plan.changes], [])
    except SeatsExhausted as exc:  # the cached catalog was optimistic; Graph has the last word
        await graph.catalog(fresh=True)
        return await _blocked(request, user, services, exc, tuple(c.desired.part_number for c in plan.changes))
    except PermanentError as exc:
        for change in plan.changes:
            await record(
                services, user_key=user.id, upn=user.user_principal_name, outcome="failed",
                kind="AssignmentFailed", reason=exc.message, request_id=request.request_id,
                source=request.source, sku=change.desired.part_number, rule=plan.rule,
                disabled=change.desired.disabled_plan_names,
            )  # fmt: skip
        return Handled("failed", exc.message)
    for change in plan.changes:
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="assigned", kind="LicenseAssigned",
            reason=_describe(change.desired, change.before, catalog), request_id=request.request_id,
            source=request.source, sku=change.desired.part_number, rule=plan.rule,
            disabled=change.desired.disabled_plan_names,
            before=None if change.before is None else _names(catalog, change.desired.sku_id, change.before),
        )  # fmt: skip
    await _schedule_verify(request, user, plan, services, delay=settings.verify_delay_seconds)
    assigned = ", ".join(c.desired.part_number for c in plan.changes)
    log.info("assigned %s to %s (rule %s, request %s)", assigned, user.id, plan.rule, request.request_id)
    return Handled("assigned", f"{assigned} assigned to {user.user_principal_name}")


async def _schedule_verify(
    request: OnboardRequest, user: UserFacts, plan: AssignmentPlan, services: Services, *, delay: int
) -> None:
    managed = plan.managed
    if not managed:
        return
    deadline = services.clock() + timedelta(minutes=services.settings.verify_deadline_minutes)
    payload = {
        "userId": user.id,
        "userPrincipalName": user.user_principal_name,
        "requestId": request.request_id,
        "source": request.source,
        "rule": plan.rule,
        "licenses": [
            {
                "skuId": d.sku_id,
                "partNumber": d.part_number,
                "disabledPlans": sorted(d.disabled_plan_ids),
                "disabledPlanNames": list(d.disabled_plan_names),
            }
            for d in managed
        ],
        "deadline": deadline.isoformat(),
        "attempt": 0,
    }
    await services.storage.send(LICENSE_VERIFY_QUEUE, payload, delay_seconds=delay)


async def _note_compliant(request: OnboardRequest, user: UserFacts, plan: AssignmentPlan, services: Services) -> None:
    for desired in plan.desired:
        grouped = desired in plan.held_by_group
        await services.storage.append_event(
            AuditEvent(
                user.id, "AlreadyCompliant", request.request_id, request.source, desired.part_number,
                rule=plan.rule,
                detail="held via a group; not managed here" if grouped else "already matches the policy",
                at=services.clock(),
            )
        )  # fmt: skip


async def _user_missing(request: OnboardRequest, services: Services, exc: UserNotFound) -> Handled:
    settings = services.settings
    key = request.user.lower()
    if request.attempt + 1 < settings.not_found_max_attempts:
        delay = backoff(settings.not_found_retry_seconds, request.attempt + 1)
        await services.storage.send(LICENSE_REQUESTS_QUEUE, retry_payload(request), delay_seconds=delay)
        reason = (
            f"user {request.user} not found (new accounts take a moment to replicate); "
            f"retry {request.attempt + 2} of {settings.not_found_max_attempts} in {delay} s"
        )
        # An event, not a status row: once the user appears, rows are keyed by object id, and a
        # "pending" row under the UPN would linger after the user was licensed.
        await services.storage.append_event(
            AuditEvent(key, "RequestDeferred", request.request_id, request.source, detail=reason, at=services.clock())
        )
        return Handled("deferred", reason)
    reason = f"user {request.user} does not exist in the tenant (checked {settings.not_found_max_attempts} times)"
    await record(
        services, user_key=key, upn=request.user, outcome="rejected", kind="RequestRejected",
        reason=f"{reason}: {exc.message}", request_id=request.request_id, source=request.source,
        attempts=request.attempt + 1,
    )  # fmt: skip
    return Handled("rejected", reason)


async def _rejected(request: OnboardRequest, user: UserFacts, services: Services, reason: str) -> Handled:
    await record(
        services, user_key=user.id, upn=user.user_principal_name, outcome="rejected", kind="RequestRejected",
        reason=reason, request_id=request.request_id, source=request.source, attempts=request.attempt + 1,
    )  # fmt: skip
    return Handled("rejected", reason)


async def _blocked(
    request: OnboardRequest, user: UserFacts, services: Services, exc: SeatsExhausted, skus: tuple[str, ...] = ()
) -> Handled:
    settings = services.settings
    attempt = request.attempt + 1
    if attempt < settings.blocked_max_attempts:
        delay = backoff(settings.blocked_retry_seconds, attempt)
        await services.storage.send(LICENSE_REQUESTS_QUEUE, retry_payload(request), delay_seconds=delay)
        reason = f"{exc.message}; re-checking in {delay} s (attempt {attempt} of {settings.blocked_max_attempts})"
    else:
        reason = (
            f"{exc.message}; stopped re-checking after {attempt} attempts: free or buy seats, then requeue the request"
        )
    for sku in exc.part_numbers or skus or ("-",):
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="blocked", kind="AssignmentBlocked",
            reason=reason, request_id=request.request_id, source=request.source, sku=sku, attempts=attempt,
        )  # fmt: skip
    return Handled("blocked", reason)


def _names(catalog: Catalog, sku_id: str, plan_ids: frozenset[str]) -> tuple[str, ...]:
    sku = catalog.by_id(sku_id)
    names = {p.id: p.name for p in sku.plans} if sku else {}
    return tuple(sorted(names.get(p, p) for p in plan_ids))


def _describe(desired: DesiredLicense, before: frozenset[str] | None, catalog: Catalog) -> str:
    after = ", ".join(desired.disabled_plan_names) or "none"
    if before is None:
        return f"{desired.part_number} assigned with disabled plans: {after}"
    was = ", ".join(_names(catalog, desired.sku_id, before)) or "none"
    return f"{desired.part_number} disabled plans changed from [{was}] to [{after}]"
