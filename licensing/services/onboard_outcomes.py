"""The ways onboarding ends short of an assignment: blocked, rejected, user missing, already compliant."""

from __future__ import annotations

from licensing.core.errors import SeatsExhausted, UserNotFound
from licensing.core.messages import OnboardRequest
from licensing.core.model import UserFacts
from licensing.core.outcomes import Decided, Noted, Subject
from licensing.core.planning import AssignmentPlan
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import REQUEST_LEVEL
from licensing.services.context import Services
from licensing.services.facts import UserState
from licensing.services.recording import Handled, about, backoff, record, retry_payload
from licensing.services.verify import schedule_verification


async def user_missing(request: OnboardRequest, services: Services, exc: UserNotFound) -> Handled:
    """Retry a 404 a few times (new accounts replicate late), then reject."""
    settings = services.settings
    subject = about(request)
    if request.attempt + 1 < settings.not_found_max_attempts:
        delay = backoff(settings.not_found_retry_seconds, request.attempt + 1)
        reason = (
            f"user {request.user} not found (new accounts take a moment to replicate); "
            f"retry {request.attempt + 2} of {settings.not_found_max_attempts} in {delay} s"
        )
        # An event, not a status row: once the user appears, rows are keyed by object id, and a
        # "pending" row under the UPN would linger after the user was licensed.
        await record(services, Noted(subject, "RequestDeferred", reason))
        await services.storage.send(LICENSE_REQUESTS_QUEUE, retry_payload(request), delay_seconds=delay)
        return Handled("deferred", reason)
    reason = f"user {request.user} does not exist in the tenant (checked {settings.not_found_max_attempts} times)"
    await record(services, Decided(subject, "rejected", "RequestRejected", f"{reason}: {exc.message}"))
    return Handled("rejected", reason)


async def rejected(subject: Subject, services: Services, reason: str) -> Handled:
    """Record a permanent problem with this request (bad policy match, no usage location)."""
    await record(services, Decided(subject, "rejected", "RequestRejected", reason))
    return Handled("rejected", reason)


async def blocked(
    request: OnboardRequest, user: UserFacts, services: Services, exc: SeatsExhausted, skus: tuple[str, ...] = ()
) -> Handled:
    """No free seats: record ``blocked`` first, then re-enqueue with backoff (a bounded number of times)."""
    settings = services.settings
    subject = about(request, user)
    attempt = subject.attempts
    retry = attempt < settings.blocked_max_attempts
    delay = backoff(settings.blocked_retry_seconds, attempt) if retry else 0
    if retry:
        reason = f"{exc.message}; re-checking in {delay} s (attempt {attempt} of {settings.blocked_max_attempts})"
    else:
        reason = f"{exc.message}; stopped re-checking after {attempt} attempts: free or buy seats, then requeue it"
    for sku in exc.part_numbers or skus or (REQUEST_LEVEL,):
        await record(services, Decided(subject, "blocked", "AssignmentBlocked", reason, sku=sku))
    if retry:  # sent last: a failure above redelivers this message instead of forking a second retry
        await services.storage.send(LICENSE_REQUESTS_QUEUE, retry_payload(request), delay_seconds=delay)
    return Handled("blocked", reason)


async def compliant(
    request: OnboardRequest, state: UserState, plan: AssignmentPlan, services: Services, *, verify_again: bool
) -> Handled:
    """Nothing to change: an AlreadyCompliant event per SKU (saying so when a group provides it), old request rows
    cleared, and a check sent when no verification of the managed SKUs is done or under way."""
    user = state.user
    subject = about(request, user)
    for desired in plan.desired:
        grouped = desired in plan.held_by_group
        detail = "held via a group; not managed here" if grouped else "already matches the policy"
        await record(services, Noted(subject, "AlreadyCompliant", detail, sku=desired.part_number, rule=plan.rule))
    await clear_request_rows(request, user, services)
    if verify_again and plan.managed:
        await schedule_verification(services, subject, plan, delay=0)
    return Handled("compliant", f"{user.user_principal_name} already matches rule {plan.rule}")


async def clear_request_rows(request: OnboardRequest, user: UserFacts, services: Services) -> None:
    """Drop request-level rows (an old rejection, a failure before the user was known) once the user is fine."""
    for key in {user.id, request.user.lower()}:
        await services.storage.delete_status(key, REQUEST_LEVEL)
