"""Six-field NCRONTAB (Azure Functions timer syntax: second minute hour day month day-of-week), validated. Pure."""

from __future__ import annotations

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
