"""`--since`: an age (``7d``, ``12h``, ``30m``) or a date/time (``2025-03-01``, ``2025-03-01T09:00``, UTC unless
it names an offset). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from licensing.cli.users_file import CommandLineError

_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def cutoff(text: str | None, *, now: datetime) -> datetime | None:
    """The oldest time ``--since`` keeps, or None without it; CommandLineError says the accepted forms."""
    if text is None:
        return None
    if len(text) >= 2 and text[-1] in _UNITS and text[:-1].isdigit():
        return now - timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CommandLineError(
            f"--since {text!r}: use a number and d, h or m, e.g. 7d, or a date, e.g. 2025-03-01 (UTC)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
