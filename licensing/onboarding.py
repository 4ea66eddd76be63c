"""Onboard one user: read, plan, set usage location, check seats, assign, schedule verification."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from licensing import leases
from licensing.composition import Services
from licensing.errors import (
    InvalidRequest,
    PermanentError,
    PolicyError,
    SeatsExhausted,
    TransientError,
    UsageLocationMissing,
    UserNotFound,
)
from licensing.messages import LICENSE_REQUESTS_QUEUE, OnboardRequest, parse_message
from licensing.model import Catalog, UserFacts
from licensing.offboarding import LEAVER, offboard, owned_skus, record_removals
from licensing.onboarding_outcomes import blocked, clear_request_rows, note_compliant, rejected, user_missing
from licensing.planning import AssignmentPlan, DesiredLicense, plan_assignment
from licensing.policy import Policy
from licensing.recording import Handled, backoff, note_failed_attempt, record, reject_unreadable
from licensing.records import AuditEvent, EventKind, StatusRecord
from licensing.seats import release_blocked, warn_low_seats
from licensing.verifying import schedule_verification

log = logging.getLogger(__name__)
LEASE_WAIT_SECONDS = 3  # how soon a request that found the user busy comes back (with jitter)


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
        await record(
            services, user_key=request.user.lower(), upn=request.user, outcome="failed", kind="AssignmentFailed",
            reason=exc.message, request_id=request.request_id, source=request.source, attempts=request.attempt + 1,
        )  # fmt: skip
        return Handled("failed", exc.message)
    except Exception as exc:
        await note_failed_attempt(
            services, user_key=request.user.lower(), request_id=request.request_id, source=request.source,
            error=exc, delivery=delivery,
        )  # fmt: skip
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
    holder = f"{request.request_id}:{uuid.uuid4().hex[:8]}"
    if not await leases.take(services.storage, user.id, holder=holder, now=services.clock()):
        # Another request for this user is being applied right now (a duplicate, or HR and Graph at once):
        # come back in a few seconds and find the result, instead of writing the same change twice.
        delay = backoff(LEASE_WAIT_SECONDS, 1)
        await services.storage.send(LICENSE_REQUESTS_QUEUE, request.model_dump(mode="json", by_alias=True),
                                    delay_seconds=delay)  # fmt: skip
        return Handled("deferred", f"another request for {user.id} is in progress; again in {delay} s")
    try:
        user = await services.graph.get_user(user.id)  # fresh facts: the previous holder may just have written
        if request.action == "remove":
            return await offboard(request, user, services)
        return await _assign(request, user, policy, services)
    except PermanentError as exc:  # Graph refused something unplanned (an invalid country, a permission)
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="failed", kind="AssignmentFailed",
            reason=exc.message, request_id=request.request_id, source=request.source, attempts=request.attempt + 1,
        )  # fmt: skip
        return Handled("failed", exc.message)
    finally:
        await leases.give_back(services.storage, user.id, holder=holder)


async def _assign(  # noqa: PLR0911  # one exit per outcome
    request: OnboardRequest, user: UserFacts, policy: Policy, services: Services
) -> Handled:
    graph, settings = services.graph, services.settings
    catalog = await graph.catalog()
    owned, rows = await owned_skus(request, user.id, catalog, services)
    if refusal := _refusal(request, user, rows):
        await _event(services, request, user, "RequestRejected", refusal)
        return Handled("skipped", refusal)
    if LEAVER in rows:  # a rehire, reported by HR after the termination
        await services.storage.delete_status(user.id, LEAVER)
    try:
        plan = plan_assignment(
            user, policy, catalog, attributes=request.attributes, usage_location=request.usage_location, owned=owned
        )
    except SeatsExhausted as exc:
        return await blocked(request, user, services, exc)
    except (PolicyError, UsageLocationMissing) as exc:
        return await rejected(request, user, services, exc.message)
    if plan.no_op:
        await note_compliant(request, user, plan, services)
        await clear_request_rows(request, user, services)
        if _unverified(rows, plan):
            await _verify_later(request, user, plan, services, delay=0)
        return Handled("compliant", f"{user.user_principal_name} already matches rule {plan.rule}")
    if plan.usage_location:
        if not settings.set_usage_location:
            return await rejected(
                request, user, services,
                f"{user.user_principal_name} has no usage location and LICENSING_SET_USAGE_LOCATION is off; "
                "set usageLocation on the user or turn the setting on (needs User.ReadWrite.All)",
            )  # fmt: skip
        await services.budget.permit()
        await graph.set_usage_location(user.id, plan.usage_location)
        await _event(services, request, user, "UsageLocationSet", f"usageLocation set to {plan.usage_location}")
    # Intent first: if the write succeeds but recording it fails, the redelivery finds nothing to do,
    # and this event is what keeps the before/after in the audit trail.
    for change in plan.changes:
        await _event(services, request, user, "AssignmentRequested", _describe(change.desired, change.before, catalog),
                     sku=change.desired.part_number, before=_before(change.before, change.desired, catalog),
                     after=change.desired.disabled_plan_names)  # fmt: skip
    await services.budget.permit()
    try:
        await graph.assign(
            user.id,
            [(c.desired.sku_id, c.desired.disabled_plan_ids) for c in plan.changes],
            [r.sku_id for r in plan.removals],  # a mover's old SKU goes in the same call: both or neither
        )
    except SeatsExhausted as exc:  # the cached catalog was optimistic; Graph has the last word
        await graph.catalog(fresh=True)
        return await blocked(request, user, services, exc, tuple(c.desired.part_number for c in plan.changes))
    # The check goes out before the "assigned" row: that row then always has a check behind it, even if storage
    # fails right after (a redelivery treats "assigned" as a check under way). The row is dated before the send,
    # so a quick check's "verified" is never overwritten by it.
    assigned_at = services.clock()
    await _verify_later(request, user, plan, services, delay=settings.verify_delay_seconds)
    for change in plan.changes:
        await record(
            services, user_key=user.id, upn=user.user_principal_name, outcome="assigned", kind="LicenseAssigned",
            reason=_describe(change.desired, change.before, catalog), request_id=request.request_id,
            source=request.source, sku=change.desired.part_number, rule=plan.rule,
            disabled=change.desired.disabled_plan_names, before=_before(change.before, change.desired, catalog),
            at=assigned_at,
        )  # fmt: skip
    await record_removals(request, user, plan.removals, catalog, services, rule=plan.rule)
    await warn_low_seats(services, catalog, [c.desired.part_number for c in plan.changes if c.before is None])
    if plan.removals:
        await release_blocked(services, {r.part_number: 1 for r in plan.removals})
    await clear_request_rows(request, user, services)
    done = ", ".join([c.desired.part_number for c in plan.changes] + [f"-{r.part_number}" for r in plan.removals])
    log.info("licenses %s for %s (rule %s, request %s)", done, user.id, plan.rule, request.request_id)
    return Handled("assigned", f"{done} for {user.user_principal_name}")


def _unverified(rows: Mapping[str, StatusRecord], plan: AssignmentPlan) -> bool:
    """True unless every managed SKU already has a verification done or under way (no second chain)."""
    return any(
        (row := rows.get(d.part_number)) is None or row.outcome not in {"verified", "pending", "assigned"}
        for d in plan.managed
    )


def _refusal(request: OnboardRequest, user: UserFacts, rows: Mapping[str, StatusRecord]) -> str | None:
    """Why this user must not be licensed now: a disabled account, or a leaver (until a later HR hire)."""
    if not user.account_enabled:
        return "the account is disabled; disabled accounts are not licensed"
    tomb = rows.get(LEAVER)
    if tomb is None:
        return None
    if request.source == "hr" and request.issued_at is not None and request.issued_at > tomb.updated_at:
        return None
    return f"left on {tomb.updated_at:%Y-%m-%d} (HR terminate); only a later HR hire licenses them again"


async def _verify_later(
    request: OnboardRequest, user: UserFacts, plan: AssignmentPlan, services: Services, *, delay: int
) -> None:
    if plan.managed:
        await schedule_verification(
            services, user_id=user.id, upn=user.user_principal_name, request_id=request.request_id,
            source=request.source, rule=plan.rule, licenses=plan.managed, delay=delay,
        )  # fmt: skip


async def _event(
    services: Services, request: OnboardRequest, user: UserFacts, kind: EventKind, detail: str, *, sku: str = "",
    before: tuple[str, ...] | None = None, after: tuple[str, ...] | None = None,
) -> None:  # fmt: skip
    await services.storage.append_event(
        AuditEvent(
            user.id,
            kind,
            request.request_id,
            request.source,
            sku,
            before,
            after,
            detail=detail,
            at=services.clock(),
        )
    )


def _before(before: frozenset[str] | None, desired: DesiredLicense, catalog: Catalog) -> tuple[str, ...] | None:
    return None if before is None else _names(catalog, desired.sku_id, before)


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
