"""Injected failures for the emulated tenant: throttling, outages, latency, slow answers, a write budget,
a refused licenseDetails or managedDevices.

Faults apply to Graph requests only (never to /_emulator/*). Each Graph request - a plain request or
one sub-request of a $batch - draws once from a seeded random.Random, so a given seed and request
order always throttle the same requests. Each HTTP request (a $batch once) also draws once from a
second seeded random.Random whether it is slow, so turning slow answers on leaves the throttle draws as
they were.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class Fault(enum.Enum):
    """What an injected fault does to one request."""

    THROTTLED = 429
    UNAVAILABLE = 503


@dataclass
class Faults:
    """Mutable at runtime (directly, or by POST /_emulator/faults).

    ``throttle_next`` answers the next N Graph requests with 429 regardless of the rates: the
    deterministic switch tests use to see the SDK's RetryHandler at work.

    ``write_budget`` identity writes (assignLicense, PATCH /users/{id}; $batch sub-requests included)
    are admitted per sliding ``write_window`` seconds of the tenant's clock (0 = unlimited); a write
    beyond it is refused with Graph's 429 and a Retry-After of the seconds until the window has room.
    ``slow_rate`` of HTTP requests are answered ``slow_ms`` late: the request takes effect first, then
    the answer waits - a slow gateway whose client may time out although the write went through.
    """

    throttle_rate: float = 0.0
    retry_after: int = 1
    unavailable_rate: float = 0.0
    latency_ms: float = 0.0
    license_details_forbidden: bool = False
    devices_forbidden: bool = False  # GET /deviceManagement/managedDevices answers 403 (no Intune permission)
    throttle_next: int = 0
    seed: int | None = 0
    write_budget: int = 0
    write_window: float = 150.0
    slow_rate: float = 0.0
    slow_ms: float = 0.0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _slow_rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._reseed()

    def _reseed(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311  # fault injection, not cryptography
        slow_seed = None if self.seed is None else f"slow:{self.seed}"
        self._slow_rng = random.Random(slow_seed)  # noqa: S311  # fault injection, not cryptography

    def draw(self) -> Fault | None:
        """The fault for the next Graph request, if any. Draws once per call whatever the rates."""
        roll = self._rng.random()
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return Fault.THROTTLED
        if roll < self.throttle_rate:
            return Fault.THROTTLED
        if roll < self.throttle_rate + self.unavailable_rate:
            return Fault.UNAVAILABLE
        return None

    def draw_slow(self) -> float:
        """Seconds to hold back the answer to the next HTTP request (0.0 if not slow). Draws once per call."""
        roll = self._slow_rng.random()
        return self.slow_ms / 1000 if roll < self.slow_rate and self.slow_ms > 0 else 0.0

    def update(self, changes: Mapping[str, Any]) -> None:
        """Set fields from a JSON object (TypeError / ValueError for a wrong type / value); a seed reseeds."""
        known = {f.name: f for f in fields(self) if not f.name.startswith("_")}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault setting {name!r}; known: {', '.join(sorted(known))}")
            checked[name] = _coerce(name, value)
        for name, value in checked.items():
            setattr(self, name, value)
        if "seed" in checked:
            self._reseed()

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def _coerce(name: str, value: Any) -> Any:  # noqa: ANN401  # a JSON value of any type
    if name in {"license_details_forbidden", "devices_forbidden"}:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false")
        return value
    if name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError("seed must be an integer or null")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number")
    if name in {"throttle_rate", "unavailable_rate", "slow_rate"} and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    if name == "write_window" and value <= 0:
        raise ValueError("write_window must be > 0 seconds")
    if name in {"retry_after", "throttle_next", "write_budget"}:
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0")
        return int(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return float(value)
