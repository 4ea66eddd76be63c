"""Timer-triggered functions: the nightly sweep, releasing far-future HR requests, the Graph subscription, the
status page's daily snapshot.

Each handler imports its use case when first called, not at module level: every Flex Consumption cold start
imports function_app to index the functions, and the use cases pull in the Graph and Storage SDKs.
"""

from __future__ import annotations

import logging

import azure.functions as func

from licensing import composition
from licensing.core.records import utcnow
from licensing.functions.traced import traced_function

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped
RELEASE_SCHEDULE = "0 */15 * * * *"  # six-field NCRONTAB, UTC: every 15 minutes
SUBSCRIPTION_SCHEDULE = "0 7 * * * *"  # hourly at :07; renewal happens when < 3 days are left
SNAPSHOT_SCHEDULE = "0 55 23 * * *"  # daily at 23:55 UTC: the day's last seat counts, on the day they describe


@bp.function_name("release_scheduled")
@bp.timer_trigger(arg_name="timer", schedule=RELEASE_SCHEDULE, run_on_startup=False, use_monitor=True)
@traced_function
async def release_scheduled(timer: func.TimerRequest) -> None:
    """Hires and leavers effective more than 7 days out wait in a table; move them onto the queue in time."""
    from licensing.services.scheduling import release_due  # noqa: PLC0415  # on first call: cold start

    services = await composition.services()
    released = await release_due(services.storage, now=utcnow())
    log.info("release_scheduled: %d released (past due: %s)", released, timer.past_due)


@bp.function_name("graph_subscription")
@bp.timer_trigger(arg_name="timer", schedule=SUBSCRIPTION_SCHEDULE, run_on_startup=False, use_monitor=True)
@traced_function
async def graph_subscription(timer: func.TimerRequest) -> None:
    """Create the users subscription when missing, renew it before it expires."""
    from licensing.services.subscriptions import keep_alive  # noqa: PLC0415  # on first call: cold start

    services = await composition.services()
    result = await keep_alive(services, now=utcnow())
    log.info("graph_subscription: %s", result)


@bp.function_name("sweep")
@bp.timer_trigger(arg_name="timer", schedule="%SWEEP_SCHEDULE%", run_on_startup=False, use_monitor=True)
@traced_function
async def sweep(timer: func.TimerRequest) -> None:
    """The nightly safety net: find drift across every user, record it, and queue fixes in remediate mode."""
    from licensing.services.sweep import run_sweep  # noqa: PLC0415  # on first call: cold start

    result = await run_sweep(await composition.services())
    log.info(
        "sweep %s: %s read, %d users, %d drifted", result.run_id, result.read, result.users_seen, result.users_drifted
    )


@bp.function_name("daily_snapshot")
@bp.timer_trigger(arg_name="timer", schedule=SNAPSHOT_SCHEDULE, run_on_startup=False, use_monitor=True)
@traced_function
async def daily_snapshot(timer: func.TimerRequest) -> None:
    """The day's seats in use per SKU for the status page's chart, and a recount of the outcome counters."""
    from licensing.services.snapshots import take_daily_snapshot  # noqa: PLC0415  # on first call: cold start

    kept = await take_daily_snapshot(await composition.services())
    log.info(
        "daily_snapshot %s: %d SKUs, totals %s (past due: %s)", kept.day, len(kept.seats), kept.totals, timer.past_due
    )
