"""The status page's health signals as plain data: queue depths, the Graph subscription's expiry, durations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

EXPIRING_WITHIN = timedelta(days=1)  # renewal starts 3 days ahead, hourly: a day left means renewals are failing
SubscriptionState = Literal["not-configured", "none", "expired", "expiring", "ok"]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """A queue's approximate message count; a poison queue holding anything needs someone."""

    name: str
    messages: int

    @property
    def poison(self) -> bool:
        """Whether this is a ``-poison`` queue (messages the functions gave up on)."""
        return self.name.endswith("-poison")

    @property
    def alarming(self) -> bool:
        """A poison queue that is not empty."""
        return self.poison and self.messages > 0


@dataclass(frozen=True, slots=True)
class SubscriptionHealth:
    """The Graph users subscription as keep_alive last recorded it."""

    state: SubscriptionState
    expires_at: datetime | None = None
    left: timedelta | None = None

    def text(self) -> str:
        """'expires in 2 days', 'expired 3 hours ago', 'none', 'not configured'."""
        if self.state == "not-configured":
            return "not configured (GRAPH_NOTIFICATION_URL unset): changes arrive with the nightly sweep only"
        if self.state == "none" or self.left is None:
            return "none recorded yet (the hourly timer creates it)"
        if self.state == "expired":
            return f"expired {duration(-self.left)} ago"
        return f"expires in {duration(self.left)}"


@dataclass(frozen=True, slots=True)
class Health:
    """Is the pipeline moving: queue depths, the subscription's expiry, when the seat numbers were read."""

    queues: tuple[QueueDepth, ...]
    subscription: SubscriptionHealth
    seats_read_at: datetime | None  # when the catalog (seats) was read from Graph; None: not known
    seats_age: timedelta | None


def subscription_health(*, configured: bool, expires_at: datetime | None, now: datetime) -> SubscriptionHealth:
    """The subscription's state from the expiry keep_alive recorded (None: nothing recorded)."""
    if not configured:
        return SubscriptionHealth("not-configured")
    if expires_at is None:
        return SubscriptionHealth("none")
    left = expires_at - now
    state: SubscriptionState = "expired" if left <= timedelta(0) else "expiring" if left < EXPIRING_WITHIN else "ok"
    return SubscriptionHealth(state, expires_at, left)


def duration(span: timedelta) -> str:
    """A span in its largest whole unit: '42 s', '5 min', '3 hours', '2 days' (never negative)."""
    seconds = max(int(span.total_seconds()), 0)
    for unit, size in (("day", 86_400), ("hour", 3_600)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
