"""Six-field NCRONTAB (Azure Functions timer syntax: second minute hour day month day-of-week), validated. Pure."""

from __future__ import annotations

FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
          ("day-of-week", 0, 6))  # fmt: skip
NAMES = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
    "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}  # fmt: skip


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
