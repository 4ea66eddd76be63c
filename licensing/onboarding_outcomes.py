"""The ways onboarding ends short of an assignment: blocked, rejected, user missing, already compliant."""

from __future__ import annotations

from licensing.composition import Services
from licensing.errors import SeatsExhausted, UserNotFound
from licensing.messages import LICENSE_REQUESTS_QUEUE, OnboardRequest
from licensing.model import UserFacts
from licensing.planning import AssignmentPlan
from licensing.recording import Handled, backoff, record, retry_payload
from licensing.records import REQUEST_LEVEL, AuditEvent


async def user_missing(request: OnboardRequest, services: Services, exc: UserNotFound) -> Handled:
    """Retry a 404 a few times (new accounts replicate late), then reject."""
    settings = services.settings
    key = request.user.lower()
    if request.attempt + 1 < settings.not_found_max_attempts:
        delay = backoff(settings.not_found_retry_seconds, request.attempt + 1)
        reason = (
            f"user {request.user} not found (new accounts take a moment to replicate); "
            f"retry {request.attempt + 2} of {settings.not_found_max_attempts} in {delay} s"
        )
        # An event, not a status row: once the user appears, rows are keyed by object id, and a
        # "pending" row under the UPN would linger after the user was licensed.
        await services.storage.append_event(
            AuditEvent(key, "RequestDeferred", request.request_id, request.source, detail=reason, at=services.clock())
        )
        await services.storage.send(LICENSE_REQUESTS_QUEUE, retry_payload(request), delay_seconds=delay)
        return Handled("deferred", reason)
    reason = f"user {request.user} does not exist in the tenant (checked {settings.not_found_max_attempts} times)"
    await record(
        services, user_key=key, upn=request.user, outcome="rejected", kind="RequestRejected",
        reason=f"{reason}: {exc.message}", request_id=request.request_id, source=request.source,
        attempts=request.attempt + 1,
    )  # fmt: skip
    return Handled("rejected", reason)


async def rejected(request: OnboardRequest, user: UserFacts, services: Services, reason: str) -> Handled:
    """Record a permanent problem with this request (bad policy match, no usage location)."""
    await record(
        services, user_key=user.id, upn=user.user_principal_name, outcome="rejected", kind="RequestRejected",
        reason=reason, request_id=request.request_id, source=request.source, attempts=request.attempt + 1,
    )  # fmt: skip
    return Handled("rejected", reason)


async def blocked(
    request: OnboardRequest, user: UserFacts, services: Services, exc: SeatsExhausted, skus: tuple[str, ...] = ()
) -> Handled:
    """No free seats: record ``blocked`` first, then re-enqueue with backoff (a bounded number of times)."""
    settings = services.settings
    attempt = request.attempt + 1
    retry = attempt < settings.blocked_max_attempts
    delay = backoff(settings.blocked_retry_seconds, attempt) if retry else 0
    if retry:
        reason = f"{exc.message}; re-checking in {delay} s (attempt {attempt} of {settings.blocked_max_attempts})"
    else:
        reason = f"{exc.message}; stopped re-checking after {attempt} attempts: free or buy seats, then requeue it"
    for sku in exc.part_numbers or skus or (REQUEST_LEVEL,):
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="blocked", kind="AssignmentBlocked",
            reason=reason, request_id=request.request_id, source=request.source, sku=sku, attempts=attempt,
        )  # fmt: skip
    if retry:  # sent last: a failure above redelivers this message instead of forking a second retry
        await services.storage.send(LICENSE_REQUESTS_QUEUE, retry_payload(request), delay_seconds=delay)
    return Handled("blocked", reason)


async def note_compliant(request: OnboardRequest, user: UserFacts, plan: AssignmentPlan, services: Services) -> None:
    """An AlreadyCompliant event per SKU (saying so when a group provides it)."""
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


async def clear_request_rows(request: OnboardRequest, user: UserFacts, services: Services) -> None:
    """Drop request-level rows (an old rejection, a failure before the user was known) once the user is fine."""
    for key in {user.id, request.user.lower()}:
        await services.storage.delete_status(key, REQUEST_LEVEL)
