"""Six-field NCRONTAB (Azure Functions timer syntax: second minute hour day month day-of-week), validated. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import product

FIELDS = (  # (name, lowest, highest)
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 6),
)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")  # 1-12
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # 0-6
NAMES = {name: n for n, name in enumerate(MONTHS, start=1)} | {name: n for n, name in enumerate(WEEKDAYS)}


class CronError(ValueError):
    """The expression is not six-field NCRONTAB; the message says which field and why."""


def validate_ncrontab(expression: str) -> tuple[str, ...]:
    """Return the six fields or raise CronError (e.g. a five-field Unix cron, a value out of range)."""
    fields = expression.split()
    if len(fields) != 6:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; Azure Functions timers need six "
            "(second minute hour day month day-of-week), e.g. '0 0 2 * * *' for 02:00 UTC daily"
        )
    for text, (name, low, high) in zip(fields, FIELDS, strict=True):
        for part in text.split(","):
            _check_part(part, name, low, high)
    return tuple(fields)


def _check_part(part: str, name: str, low: int, high: int) -> None:
    base, _, step = part.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        raise CronError(f"{name}: step {step!r} must be a positive number")
    if base == "*":
        return
    for bound in base.split("-", 1):
        value = NAMES.get(bound.lower()) if not bound.isdigit() else int(bound)
        if value is None or not low <= value <= high:
            raise CronError(f"{name}: {bound!r} is not between {low} and {high}")


def _expand(text: str, low: int, high: int) -> list[int]:
    """One validated NCRONTAB field -> the sorted values it stands for ("*/15", "1-5", "mon,fri", "5/10")."""
    values: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            start, end = low, high
        else:
            first, _, last = base.partition("-")
            start = NAMES[first.lower()] if not first.isdigit() else int(first)
            # "5/10" runs from 5 to the field's end, as in NCrontab; a bare "5" is just 5
            end = (NAMES[last.lower()] if not last.isdigit() else int(last)) if last else (high if step else start)
        values.update(range(start, end + 1, int(step or 1)))
    return sorted(values)


def next_occurrence(expression: str, after: datetime) -> datetime:
    """The first time (UTC, whole seconds) strictly after ``after`` that a six-field NCRONTAB schedule fires.

    Day of month and day of week must both match (NCrontab, which the Functions host uses, combines them with AND).
    """
    fields = validate_ncrontab(expression)
    seconds, minutes, hours, days, months, weekdays = (
        _expand(text, low, high) for text, (_, low, high) in zip(fields, FIELDS, strict=True)
    )
    start = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    day = start.date()
    for _ in range(8 * 366):  # long enough for 29 February; a schedule that never fires ends the loop
        if day.month in months and day.day in days and day.isoweekday() % 7 in weekdays:
            for hour, minute, second in product(hours, minutes, seconds):  # lexicographic: earliest first
                candidate = datetime.combine(day, time(hour, minute, second), UTC)
                if candidate >= start:
                    return candidate
        day += timedelta(days=1)
    raise CronError(f"{expression!r} never fires")
