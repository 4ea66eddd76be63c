"""The ways onboarding ends short of an assignment: blocked, rejected, user missing, already compliant, a Graph
notification with nothing to change (the echo of our own write), a usage location not replicated yet, a group license
in error, an HR event older than one applied, the user's lease held (or lost) by another worker."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from licensing.adapters.storage.leases import HrOrder, advance_hr_order
from licensing.core.errors import PolicyError, SeatsExhausted, UsageLocationMissing, UserNotFound
from licensing.core.messages import OnboardRequest
from licensing.core.model import UserFacts
from licensing.core.outcomes import Decided, Noted, Subject
from licensing.core.planning import AssignmentPlan, plan_assignment
from licensing.core.policy import Policy
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import LEAVER, REQUEST_LEVEL
from licensing.core.verification import group_failure_reason
from licensing.services.context import Services
from licensing.services.facts import UserState, hire_key, owned_skus, unverified
from licensing.services.recording import Handled, about, backoff, record, retry_payload
from licensing.services.verify import schedule_verification

log = logging.getLogger(__name__)
# Right after PATCH usageLocation, assignLicense can still answer "invalid usage location" while the directory
# replicates: come back a few times, a few seconds apart (doubling), then give up with a reason naming the lag.
LOCATION_LAG_SECONDS = 3
LOCATION_LAG_ATTEMPTS = 4
# A location this app set (its UsageLocationSet event) this recently may still be replicating, whichever delivery
# or request set it: a redelivery after a failed assignLicense finds the location on the user and skips the PATCH.
LOCATION_SET_RECENTLY = timedelta(minutes=10)
NOTHING_TO_CHANGE = "nothing to change (the echo of our own write, or a change the policy does not look at)"


async def superseded(request: OnboardRequest, state: UserState, services: Services) -> Handled | None:
    """HR order decides, per user: "skipped" (with an audit event naming both times) for an HR event issued before
    the latest one already applied; otherwise this one becomes the latest and None is returned.

    A terminate issued before a hire but delivered after it keeps the licenses; a hire issued after a terminate
    passes its tombstone (dated by the terminate's issuedAt) whenever it is delivered. A terminate waits for its end
    date while HR keeps sending updates for the leaver: only a later hire outranks it (a rehire, or the termination
    withdrawn). A request without hrEvent (queued before it existed) is ranked by the latest HR event of any kind.
    """
    issued, latest = request.issued_at, state.hired if request.hr_event == "terminate" else state.hr
    if request.source != "hr" or issued is None:
        return None
    if latest is not None and issued < latest.issued_at:
        reason = (
            f"HR request {request.request_id} issued {issued.isoformat()} is older than HR request "
            f"{latest.request_id} issued {latest.issued_at.isoformat()}, already applied: skipped"
        )
        await record(services, Noted(about(request, state.user), "RequestSuperseded", reason))
        return Handled("skipped", reason)
    order = HrOrder(issued, request.request_id)
    await advance_hr_order(services.storage, state.user.id, order)
    if request.hr_event == "hire":
        await advance_hr_order(services.storage, hire_key(state.user.id), order)
    return None


async def nothing_to_change(
    request: OnboardRequest, user: UserFacts, policy: Policy, services: Services
) -> Handled | None:
    """For a Graph notification: "skipped", with nothing written, when the user as just read needs no change and
    no check; else None (decide under the lease as any request).

    Graph notifies our own assignLicense and PATCH back as "updated" (change-notifications-overview): the user read
    here is what tells the echo from a real change made minutes later (a provisioning tool setting the department),
    at one user read (1-2 resource units) and no write. Anything the full path would record (a disabled account, a
    leaver, a request-level row to clear, a group in error, a check to send) falls through to it.
    """
    if not user.account_enabled:
        return None
    rows = {r.sku: r async for r in services.storage.statuses(user.id)}
    if LEAVER in rows or REQUEST_LEVEL in rows:
        return None
    catalog = await services.graph.catalog()
    owned = owned_skus(rows, catalog)
    try:
        plan = plan_assignment(user, policy, catalog, usage_location=request.usage_location, owned=owned)
    except (PolicyError, SeatsExhausted, UsageLocationMissing):
        return None
    if not plan.no_op or plan.group_failed or plan.group_bypassed or unverified(rows, plan):
        return None
    log.info("notification for %s: nothing to change (request %s)", user.id, request.request_id)
    return Handled("skipped", NOTHING_TO_CHANGE)


async def location_set_lately(request: OnboardRequest, user_id: str, services: Services) -> bool:
    """True when this request, or this app within LOCATION_SET_RECENTLY, set the user's usage location: Graph's
    "invalid usage location" is then replication lag (PLATFORM_NOTES), not the permanent refusal it otherwise is."""
    since = services.clock() - LOCATION_SET_RECENTLY
    return any(
        e.kind == "UsageLocationSet" and (e.request_id == request.request_id or e.at >= since)
        for e in await services.storage.events(user_id)
    )


async def user_gone(request: OnboardRequest, services: Services, exc: UserNotFound, *, soft_deleted: bool) -> Handled:
    """A Graph notification for a user Graph does not return: one in deleted items (soft-deleted: it arrives as
    "updated"), or one still missing after the retries. An audit event only, no status row: nothing was asked of us
    for it."""
    if soft_deleted:
        why = "soft-deleted: in Graph's deleted items, restorable for 30 days; notified as updated"
    else:
        reads = services.settings.not_found_max_attempts
        why = f"not returned in {reads} reads, nor in deleted items: deleted for good, or never created"
    reason = f"user {request.user} no longer exists ({why}): {exc.message}"
    await record(services, Noted(about(request), "RequestRejected", reason))
    return Handled("skipped", reason)


async def location_lag(
    request: OnboardRequest, subject: Subject, services: Services, exc: UsageLocationMissing
) -> Handled:
    """assignLicense refused the usage location this request chain just set: replication lag, so come back later."""
    waits = request.usage_location_waits + 1
    if waits > LOCATION_LAG_ATTEMPTS:
        reason = (
            f"{exc.message}; still refused {LOCATION_LAG_ATTEMPTS} times after the usage location was set "
            "(directory replication lag longer than expected): requeue the user"
        )
        await record(services, Decided(subject, "failed", "AssignmentFailed", reason))
        return Handled("failed", reason)
    delay = backoff(LOCATION_LAG_SECONDS, waits)
    reason = (
        f"Graph does not see the usage location just set yet (replication lag); assigning again in {delay} s "
        f"(wait {waits} of {LOCATION_LAG_ATTEMPTS})"
    )
    await record(services, Noted(subject, "RequestDeferred", reason))
    payload = retry_payload(request, usageLocationWaits=waits)
    await services.storage.send(LICENSE_REQUESTS_QUEUE, payload, delay_seconds=delay)
    return Handled("deferred", reason)


async def group_failures(subject: Subject, plan: AssignmentPlan, services: Services) -> None:
    """Record each SKU only a group in error would give: action-required (or a note when assigned directly)."""
    for failure in plan.group_failed:
        part = failure.desired.part_number
        reason = group_failure_reason(part, failure.held)
        await record(services, Decided(subject, "action-required", "AdminActionRequired", reason, part, plan.rule))
    for failure in plan.group_bypassed:
        part = failure.desired.part_number
        detail = f"{group_failure_reason(part, failure.held)}; assigned directly instead (assignDirectlyWhenGroupFails)"
        await record(services, Noted(subject, "AdminActionRequired", detail, sku=part, rule=plan.rule))


async def user_missing(request: OnboardRequest, services: Services, exc: UserNotFound) -> Handled:
    """Retry a 404 a few times (new accounts replicate late, and a new user's notification can arrive before Graph
    returns it), then reject; from a Graph notification an audit event only, at once for a user in deleted items."""
    settings = services.settings
    subject = about(request)
    # A soft-deleted user's notification (an "updated") 404s like a new user's: one deletedItems read tells them
    # apart, so the deleted one costs no retries; a 404 there too is a user not replicated yet (or a UPN).
    if request.source == "graph" and await services.graph.is_soft_deleted(request.user):
        return await user_gone(request, services, exc, soft_deleted=True)
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
    if request.source == "graph":
        return await user_gone(request, services, exc, soft_deleted=False)
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
    # The request itself is kept on the row: a freed seat (or `licensing requeue`) sends it back as it was, with
    # the HR attributes and usage location that chose this rule.
    kept = json.dumps(request.model_dump(mode="json", by_alias=True))
    for sku in exc.part_numbers or skus or (REQUEST_LEVEL,):
        await record(services, Decided(subject, "blocked", "AssignmentBlocked", reason, sku=sku, request=kept))
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
    failed = {f.desired for f in plan.group_failed}
    for desired in plan.desired:
        if desired in failed:
            continue  # recorded action-required: the group that should give it is in error
        grouped = desired in plan.held_by_group
        detail = "held via a group; not managed here" if grouped else "already matches the policy"
        await record(services, Noted(subject, "AlreadyCompliant", detail, sku=desired.part_number, rule=plan.rule))
        row = state.rows.get(desired.part_number)
        if grouped and row is not None and row.outcome == "action-required":  # the group was fixed
            await services.storage.delete_status(user.id, desired.part_number)
    await clear_request_rows(request, user, services)
    if verify_again and plan.managed:
        await schedule_verification(services, subject, plan, delay=0)
    return Handled("compliant", f"{user.user_principal_name} already matches rule {plan.rule}")


async def clear_request_rows(request: OnboardRequest, user: UserFacts, services: Services) -> None:
    """Drop request-level rows (an old rejection, a failure before the user was known) once the user is fine."""
    for key in {user.id, request.user.lower()}:
        await services.storage.delete_status(key, REQUEST_LEVEL)
