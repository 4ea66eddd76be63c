"""Seats: warn when a SKU runs low, and hand freed seats to blocked users one by one (no thundering herd)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping

from licensing.adapters.storage.forecast_warnings import claim_warning, release_warning
from licensing.core.forecast import Forecast
from licensing.core.model import Catalog
from licensing.core.outcomes import Noted, Subject
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import requeue_message
from licensing.services.context import Services
from licensing.services.recording import record

log = logging.getLogger(__name__)
SEATS = "_seats"  # LicenseEvents partition for tenant-wide seat events


async def warn_low_seats(services: Services, catalog: Catalog, taken: Iterable[str]) -> None:
    """After assigning ``taken`` part numbers: a warning (log + SeatsLow event) when free seats drop low."""
    threshold = services.settings.low_seat_threshold
    for part in taken:
        sku = catalog.by_part_number(part)
        if sku is None:
            continue
        free = sku.free - 1  # the catalog was read before this assignment took one
        if free < threshold:
            log.warning("low seats: %s has %d free (threshold %d)", part, max(free, 0), threshold)
            detail = f"{part} has {max(free, 0)} free of {sku.enabled} (LICENSING_LOW_SEAT_THRESHOLD={threshold})"
            await record(services, Noted(Subject(SEATS, "", "", "onboarding"), "SeatsLow", detail, sku=part))


async def warn_forecast(services: Services, forecast: Forecast) -> int:
    """A warning (log + SeatsLow event in ``_seats``, the forecast's message as its detail) per SKU that runs out
    within the forecast's horizon, at most one per SKU per UTC day whoever calls; returns how many were recorded."""
    day = forecast.taken_at.date()
    recorded = 0
    for sku in forecast.running_out:
        message = sku.message()
        if message is None or not await claim_warning(services.storage, part_number=sku.part_number, day=day):
            continue
        log.warning("seat forecast: %s", message)
        subject = Subject(SEATS, "", f"forecast-{day.isoformat()}-{sku.part_number}", "forecast")
        try:
            await record(services, Noted(subject, "SeatsLow", message, sku=sku.part_number))
        except BaseException:
            await release_warning(services.storage, part_number=sku.part_number, day=day)  # a later call records it
            raise
        recorded += 1
    return recorded


async def release_blocked(services: Services, freed: Mapping[str, int]) -> int:
    """Requeue at most as many blocked users per SKU as seats were freed; returns how many were requeued."""
    requeued = 0
    for part, seats in freed.items():
        left = seats
        if left <= 0:
            continue
        async for row in services.storage.statuses(outcome="blocked"):
            if row.sku != part:
                continue
            # The blocked request itself (HR attributes, usage location, issuedAt), not a bare {user}: a bare one
            # would be planned from directory attributes alone and could pick another rule's SKU.
            message = requeue_message(row, tag=f"unblock-{uuid.uuid4().hex[:12]}")
            await services.storage.send(LICENSE_REQUESTS_QUEUE, message)
            requeued += 1
            left -= 1
            if left == 0:
                break
    if requeued:
        log.info("requeued %d blocked user(s) for freed seats", requeued)
    return requeued
