"""The seat forecast: hires scheduled for later (HR start dates) per SKU against the seats free now."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from licensing.adapters.storage.forecast_index import scheduled_hires
from licensing.core.forecast import DEFAULT_DAYS, MAX_DAYS, Forecast, ScheduledHire, forecast
from licensing.services.context import Services
from licensing.services.seats import warn_forecast

log = logging.getLogger(__name__)
WARN_DAYS = 30  # the horizon of the automatic SeatsLow forecast warning (after a hire is scheduled, nightly)
WARN_TIMEOUT_SECONDS = 2.0  # the HR webhook answers within seconds: the warning is a nicety, never the reason not to


async def take_forecast(services: Services, *, days: int = DEFAULT_DAYS) -> Forecast:
    """Per subscribed SKU the policy assigns: the hires scheduled to start within ``days`` that will take one (the
    SKUs decided now, from each hire's HR attributes against the current policy) and the day they outrun the free
    seats. Reads the forecast index by date range and the tenant catalog: no status rows, no users."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, not {days}")
    now = services.clock()
    # A day of slack either side of the horizon for HR's time zone; the core keeps exactly the horizon's days.
    hires = await scheduled_hires(services.storage, after=now, until=now + timedelta(days=days + 2))
    catalog = await services.graph.catalog()
    hr_zone = ZoneInfo(services.settings.hr_timezone)
    return forecast(
        [_on_hr_calendar(h, services, hr_zone) for h in hires],
        policy=services.policy(),
        catalog=catalog,
        taken_at=now,
        days=days,
        today=now.astimezone(hr_zone).date(),  # the horizon counts days on HR's calendar, like the start dates
    )


def _on_hr_calendar(hire: ScheduledHire, services: Services, hr_zone: ZoneInfo) -> ScheduledHire:
    """The start date as HR gave it: a hire takes effect at 00:00 on startDate in HR's time zone less the lead."""
    local = (hire.starts_at + timedelta(hours=services.settings.hr_hire_lead_hours)).astimezone(hr_zone)
    return replace(hire, starts_on=local.date())


async def warn_scheduled_hires(services: Services, *, within: float = WARN_TIMEOUT_SECONDS) -> Forecast | None:
    """Take the forecast and record a SeatsLow warning per SKU that runs out within WARN_DAYS (once a day each), all
    within ``within`` seconds. Never raises: a failure is logged; the next scheduled hire or nightly sweep retries."""
    try:
        async with asyncio.timeout(within):
            taken = await take_forecast(services, days=WARN_DAYS)
            await warn_forecast(services, taken)
    except Exception:
        log.warning("seat forecast not taken; the next scheduled hire or the nightly sweep retries", exc_info=True)
        return None
    return taken
