"""Onboard one user, top to bottom: parse -> load facts -> plan (pure) -> apply -> outcome.

The ways it ends short of an assignment (blocked, rejected, user missing, compliant) are in onboard_outcomes;
a leaver's removal is offboard's. Every outcome goes through the one recorder.
"""

from __future__ import annotations

import logging
import uuid

from licensing.adapters.storage import leases
from licensing.adapters.storage.leases import LeaseLost
from licensing.core.errors import (
    InvalidRequest,
    PermanentError,
    PolicyError,
    SeatsExhausted,
    TransientError,
    UsageLocationMissing,
    UserNotFound,
)
from licensing.core.messages import OnboardRequest, parse_message
from licensing.core.model import UserFacts
from licensing.core.outcomes import Decided, Noted, Subject, assignment_requested, license_assigned, license_removed
from licensing.core.planning import AssignmentPlan, plan_assignment
from licensing.core.policy import Policy
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import LEAVER, StatusRecord
from licensing.services.context import Services
from licensing.services.facts import UserState, load_state, unverified
from licensing.services.offboard import offboard
from licensing.services.onboard_outcomes import (
    blocked,
    clear_request_rows,
    compliant,
    group_failures,
    location_lag,
    location_set_lately,
    nothing_to_change,
    rejected,
    superseded,
    user_missing,
)
from licensing.services.recording import (
    Handled,
    about,
    backoff,
    come_back,
    note_failed_attempt,
    record,
    reject_unreadable,
)
from licensing.services.seats import release_blocked, warn_low_seats
from licensing.services.verify import schedule_verification

log = logging.getLogger(__name__)
# A write Graph throttled (429) or could not take (5xx, timeout) is sent again by the app, not by the SDK (which never
# retries writes: adapters/graph/client.py) nor by burning the queue's maxDequeueCount: the re-sent request passes the
# shared write budget again and waits 2, 4, 8 ... s (jittered, at most 2 minutes). Past WRITE_RETRIES it raises, and
# the queue's own deliveries (then the poison handler) take over.
WRITE_RETRY_SECONDS = 2
WRITE_RETRY_CAP_SECONDS = 120
WRITE_RETRIES = 8
NO_USAGE_LOCATION = (
    "{upn} has no usage location and LICENSING_SET_USAGE_LOCATION is off; "
    "set usageLocation on the user or turn the setting on (needs User.ReadWrite.All)"
)


async def onboard(body: str, services: Services, *, message_id: str = "", delivery: int = 1) -> Handled:
    """Handle one license-requests message. Transient failures raise (the queue redelivers)."""
    try:
        request = parse_message(body, OnboardRequest)
    except InvalidRequest as exc:
        await reject_unreadable(services, body, exc.message, message_id=message_id, source="license-requests")
        return Handled("rejected", exc.message)
    try:
        return await _onboard(request, services)
    except PermanentError as exc:  # before the user was known, e.g. the app may not read users (403)
        await record(services, Decided(about(request), "failed", "AssignmentFailed", exc.message))
        return Handled("failed", exc.message)
    except Exception as exc:
        await note_failed_attempt(services, about(request), error=exc, delivery=delivery)
        raise


async def _onboard(request: OnboardRequest, services: Services) -> Handled:
    try:
        policy = services.policy()
    except PolicyError as exc:
        # The file itself is broken: every request would fail alike, so let the queue redeliver (and in
        # the end poison, with this reason) rather than reject a whole day of joiners.
        raise TransientError(f"the policy file cannot be used: {exc.message}") from None
    try:
        user = await services.graph.get_user(request.user)
    except UserNotFound as exc:
        return await user_missing(request, services, exc)
    if request.source == "graph" and (unchanged := await nothing_to_change(request, user, policy, services)):
        return unchanged  # e.g. our own assignLicense or PATCH, notified back as "updated": no lease, no write
    return await _under_lease(request, user, policy, services)


async def _under_lease(request: OnboardRequest, user: UserFacts, policy: Policy, services: Services) -> Handled:
    """Apply the request holding the user's lease; every Graph write renews it first (services.facts.fence)."""
    holder = f"{request.request_id}:{uuid.uuid4().hex[:8]}"
    lease = await leases.take(services.storage, user.id, holder=holder, now=services.clock())
    if lease is None:
        # Another request for this user is being applied right now (a duplicate, or HR and Graph at once):
        # come back in a few seconds and find the result, instead of writing the same change twice.
        return await come_back(
            services, LICENSE_REQUESTS_QUEUE, request, f"another request for {user.id} is in progress"
        )
    try:
        user = await services.graph.get_user(user.id)  # fresh facts: the previous holder may just have written
        state = await load_state(request, user, services, lease)
        if (older := await superseded(request, state, services)) is not None:
            return older
        if request.action == "remove":
            return await offboard(request, state, services)
        return await _assign(request, state, policy, services)
    except LeaseLost as exc:  # we stalled past the lease and another worker has the user now: nothing written
        return await come_back(services, LICENSE_REQUESTS_QUEUE, request, exc.message)
    except PermanentError as exc:  # Graph refused something unplanned (an invalid country, a permission)
        await record(services, Decided(about(request, user), "failed", "AssignmentFailed", exc.message))
        return Handled("failed", exc.message)
    finally:
        await lease.give_back()


async def _assign(request: OnboardRequest, state: UserState, policy: Policy, services: Services) -> Handled:
    user, subject = state.user, about(request, state.user)
    if refusal := _refusal(request, user, state.rows):
        await record(services, Noted(subject, "RequestRejected", refusal))
        return Handled("skipped", refusal)
    if LEAVER in state.rows:  # a rehire, reported by HR after the termination
        await services.storage.delete_status(user.id, LEAVER)
    try:
        plan = plan_assignment(
            user,
            policy,
            state.catalog,
            attributes=request.attributes,
            usage_location=request.usage_location,
            owned=state.owned,
        )
    except SeatsExhausted as exc:
        return await blocked(request, user, services, exc)
    except (PolicyError, UsageLocationMissing) as exc:
        return await rejected(subject, services, exc.message)
    await group_failures(subject, plan, services)
    if plan.no_op:
        return await compliant(request, state, plan, services, verify_again=unverified(state.rows, plan))
    if plan.usage_location and (stopped := await _set_usage_location(request, subject, state, plan, services)):
        return stopped
    return await _apply(request, subject, state, plan, services)


async def _set_usage_location(
    request: OnboardRequest, subject: Subject, state: UserState, plan: AssignmentPlan, services: Services
) -> Handled | None:
    """PATCH the user's usageLocation (needs User.ReadWrite.All); a Handled when the request stops here."""
    user, location = state.user, plan.usage_location or ""
    if not services.settings.set_usage_location:
        return await rejected(subject, services, NO_USAGE_LOCATION.format(upn=user.user_principal_name))
    await services.budget.permit()
    await state.fence(services)
    try:
        await services.graph.set_usage_location(user.id, location)
    except TransientError as exc:
        return await _write_later(request, subject, services, exc)
    await record(services, Noted(subject, "UsageLocationSet", f"usageLocation set to {location}"))
    return None


async def _apply(
    request: OnboardRequest, subject: Subject, state: UserState, plan: AssignmentPlan, services: Services
) -> Handled:
    user, catalog = state.user, state.catalog
    # Intent first: if the write succeeds but recording it fails, the redelivery finds nothing to do,
    # and this event is what keeps the before/after in the audit trail.
    for change in plan.changes:
        await record(services, assignment_requested(subject, change, catalog))
    await services.budget.permit()
    await state.fence(services)  # the budget may have waited: still ours, or stop before writing
    try:
        await services.graph.assign(
            user.id,
            [(c.desired.sku_id, c.desired.disabled_plan_ids) for c in plan.changes],
            [r.sku_id for r in plan.removals],  # a mover's old SKU goes in the same call: both or neither
        )
    except SeatsExhausted as exc:  # the cached catalog was optimistic; Graph has the last word
        await services.graph.catalog(fresh=True)
        return await blocked(request, user, services, exc, tuple(c.desired.part_number for c in plan.changes))
    except TransientError as exc:  # throttled, unavailable or timed out (the write may even have gone through)
        return await _write_later(request, subject, services, exc)
    except UsageLocationMissing as exc:
        just_set = plan.usage_location is not None or request.usage_location_waits > 0
        if not just_set and not await location_set_lately(request, user.id, services):
            raise  # not a location this app just set: permanent, as Graph says
        return await location_lag(request, subject, services, exc)
    await state.fence(services)  # lost while the write was in flight: the new holder records, we come back
    # The check goes out before the "assigned" row: that row then always has a check behind it, even if storage
    # fails right after (a redelivery treats "assigned" as a check under way). The row is dated before the send,
    # so a quick check's "verified" is never overwritten by it.
    assigned_at = services.clock()
    if plan.managed:
        await schedule_verification(services, subject, plan, delay=services.settings.verify_delay_seconds)
    for change in plan.changes:
        await record(services, license_assigned(subject, change, catalog, rule=plan.rule, at=assigned_at))
    why = f"rule {plan.rule!r} no longer gives it"
    for removal in plan.removals:
        await record(services, license_removed(subject, removal, catalog, why=why, rule=plan.rule))
    await warn_low_seats(services, catalog, [c.desired.part_number for c in plan.changes if c.before is None])
    if plan.removals:
        await release_blocked(services, {r.part_number: 1 for r in plan.removals})
    await clear_request_rows(request, user, services)
    done = ", ".join([c.desired.part_number for c in plan.changes] + [f"-{r.part_number}" for r in plan.removals])
    log.info("licenses %s for %s (rule %s, request %s)", done, user.id, plan.rule, request.request_id)
    return Handled("assigned", f"{done} for {user.user_principal_name}")


async def _write_later(request: OnboardRequest, subject: Subject, services: Services, exc: TransientError) -> Handled:
    """Send the request again after a throttled or failed Graph write (see WRITE_RETRIES); a redelivery that finds
    the write went through after all plans nothing and is compliant."""
    if request.write_retries >= WRITE_RETRIES:
        raise exc
    attempt = request.write_retries + 1
    delay = backoff(WRITE_RETRY_SECONDS, attempt, cap=WRITE_RETRY_CAP_SECONDS)
    reason = f"{exc.message}; the write is sent again in {delay} s (retry {attempt} of {WRITE_RETRIES})"
    await record(services, Noted(subject, "RequestDeferred", reason))
    payload = request.model_dump(mode="json", by_alias=True) | {"writeRetries": attempt}
    await services.storage.send(LICENSE_REQUESTS_QUEUE, payload, delay_seconds=delay)
    return Handled("deferred", reason)


def _refusal(request: OnboardRequest, user: UserFacts, rows: dict[str, StatusRecord]) -> str | None:
    """Why this user must not be licensed now: a disabled account, or a leaver (until a later HR hire)."""
    if not user.account_enabled:
        return "the account is disabled; disabled accounts are not licensed"
    tomb = rows.get(LEAVER)
    if tomb is None:
        return None
    rehire = request.source == "hr" and request.hr_event in {None, "hire"}  # None: queued before hrEvent existed
    if rehire and request.issued_at is not None and request.issued_at > tomb.updated_at:
        return None
    return f"left on {tomb.updated_at:%Y-%m-%d} (HR terminate); only a later HR hire licenses them again"
