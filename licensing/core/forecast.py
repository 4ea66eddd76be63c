"""The seat forecast: scheduled hires per SKU by start date against the seats free now. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from licensing.core.model import Catalog
from licensing.core.planning import policy_part_numbers, rule_specs
from licensing.core.policy import Policy

DEFAULT_DAYS = 30  # the forecast's horizon unless told (CLI --days, take_forecast(days=))
MAX_DAYS = 365


@dataclass(frozen=True, slots=True)
class ScheduledHire:
    """A hire that takes effect later (delayed on the queue or held in the table), as the forecast index keeps it.

    The SKUs are not stored: they are decided at forecast time from ``attributes`` against the current policy, as
    onboarding will decide them when the request runs.
    """

    user: str
    starts_at: datetime  # when the request takes effect (HR: 00:00 on the start date, HR's time zone, less the lead)
    attributes: Mapping[str, str] = field(default_factory=dict)
    starts_on: date | None = None  # the start date on HR's calendar; None: the UTC date of ``starts_at``

    @property
    def day(self) -> date:
        """The day the hire starts, as the forecast reports it."""
        return self.starts_on or self.starts_at.date()


@dataclass(frozen=True, slots=True)
class SkuForecast:
    """One SKU: free seats now against the hires that will take one, by start date."""

    part_number: str
    free: int  # free seats now (enabled + warning - consumed, like Sku.free)
    scheduled: int  # hires scheduled within the horizon that will take this SKU
    by_date: tuple[tuple[date, int], ...]  # (start date, hires starting that day) ascending, within horizon
    runs_out_on: date | None  # first date cumulative hires exceed `free`; None if they never do

    def message(self) -> str | None:
        """'EMS runs out on 2026-12-14: 23 hires scheduled, 14 seats free', or None when it does not run out."""
        if self.runs_out_on is None:
            return None
        hires = "hire" if self.scheduled == 1 else "hires"
        seats = "seat" if self.free == 1 else "seats"
        return (
            f"{self.part_number} runs out on {self.runs_out_on.isoformat()}: "
            f"{self.scheduled} {hires} scheduled, {self.free} {seats} free"
        )

    def as_json(self) -> dict[str, Any]:
        """The one JSON shape of a SKU's forecast (the CLI's and the status page's): ISO dates, ``null`` when none."""
        return {
            "sku": self.part_number,
            "free": self.free,
            "scheduled": self.scheduled,
            "byDate": [{"date": day.isoformat(), "hires": hires} for day, hires in self.by_date],
            "runsOutOn": self.runs_out_on.isoformat() if self.runs_out_on else None,
            "message": self.message(),
        }


@dataclass(frozen=True, slots=True)
class Forecast:
    """Every subscribed SKU the policy assigns, with what the scheduled hires will need within ``days``."""

    taken_at: datetime
    days: int
    skus: tuple[SkuForecast, ...]  # every subscribed SKU the policy assigns, by part number
    today: date | None = None  # ``taken_at``'s date on HR's calendar; None: its UTC date

    @property
    def last_day(self) -> date:
        """The horizon's last day on HR's calendar: hires starting on or before it are counted."""
        return (self.today or self.taken_at.date()) + timedelta(days=self.days)

    @property
    def running_out(self) -> tuple[SkuForecast, ...]:
        """The SKUs that run out within the horizon."""
        return tuple(s for s in self.skus if s.runs_out_on is not None)


def skus_for(policy: Policy, attributes: Mapping[str, str]) -> tuple[str, ...]:
    """Part numbers a request with these attributes gets, as planning.desired_licenses picks them: the first
    matching rule's SKUs plus their companions (transitively), each once; () when no rule matches."""
    rule = policy.rule_for(attributes)
    return () if rule is None else tuple(spec.sku for spec in rule_specs(rule, policy))


def _runs_out_on(by_date: Iterable[tuple[date, int]], free: int) -> date | None:
    cumulative = 0
    for day, hires in by_date:
        cumulative += hires
        if cumulative > free:
            return day
    return None


def forecast(
    hires: Iterable[ScheduledHire],
    *,
    policy: Policy,
    catalog: Catalog,
    taken_at: datetime,
    days: int,
    today: date | None = None,
) -> Forecast:
    """Count, per subscribed SKU the policy names, the hires starting after ``taken_at`` and on or before the
    horizon's last day (``today`` + ``days``; ``today`` is ``taken_at``'s date on HR's calendar, the calendar of
    the hires' ``day``, and defaults to its UTC date), once per user and SKU (a user's earliest start counts), and
    the first date their running total exceeds the seats free now."""
    last_day = (today or taken_at.date()) + timedelta(days=days)
    starts: dict[tuple[str, str], date] = {}  # (user, part number casefolded) -> start date
    for hire in hires:
        if hire.starts_at <= taken_at or hire.day > last_day:
            continue  # started (being processed) or beyond the horizon
        for part_number in skus_for(policy, hire.attributes):
            key = (hire.user.casefold(), part_number.casefold())
            day = hire.day
            starts[key] = min(day, starts.get(key, day))
    result: list[SkuForecast] = []
    for part_number in policy_part_numbers(policy):
        sku = catalog.by_part_number(part_number)
        if sku is None:
            continue  # not subscribed: onboarding records that, there is no seat count to forecast
        counts: dict[date, int] = {}
        for (_, pn), day in starts.items():
            if pn == part_number.casefold():
                counts[day] = counts.get(day, 0) + 1
        by_date = tuple(sorted(counts.items()))
        result.append(
            SkuForecast(
                part_number=sku.part_number,
                free=sku.free,
                scheduled=sum(counts.values()),
                by_date=by_date,
                runs_out_on=_runs_out_on(by_date, sku.free),
            )
        )
    skus = tuple(sorted(result, key=lambda s: s.part_number.casefold()))
    return Forecast(taken_at=taken_at, days=days, skus=skus, today=today)
