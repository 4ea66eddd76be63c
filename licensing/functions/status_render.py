"""The status page's two faces, both pure: HTML (a Jinja2 template shipped in the package) and JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from licensing.core.forecast import Forecast
from licensing.functions.status_charts import charts_svg
from licensing.services.overview_health import Health, duration
from licensing.services.overview_model import Failure, SeatLine, Snapshot, SweepOverview
from licensing.services.reply import Reply, error

Format = Literal["html", "json"]
FORMATS: tuple[Format, ...] = ("html", "json")
TEMPLATE = "status.html.j2"


@cache
def _environment() -> Environment:
    # Built on first use, not at import: the worker imports function_app.py to index every function, and a
    # missing template directory must not take the other functions down with it.
    env = Environment(
        loader=PackageLoader("licensing.functions", "templates"),
        autoescape=True,  # UPNs and reasons come from data (and from whoever sent a message)
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = _when
    env.filters["percent"] = _percent
    env.filters["duration"] = duration
    return env


def requested_format(params: Mapping[str, str]) -> Format | Reply:
    """``?format=`` (default html), or a 400 reply naming the allowed values."""
    wanted = params.get("format", "html")
    for known in FORMATS:
        if wanted == known:
            return known
    return error(400, f"unknown format {wanted[:40]!r}; use one of: {', '.join(FORMATS)}")


def page(snapshot: Snapshot, wanted: Format) -> Reply:
    """The snapshot as the reply the caller asked for."""
    if wanted == "json":
        return Reply(200, snapshot_json(snapshot))
    return Reply(200, render_html(snapshot), "text/html")


def render_html(snapshot: Snapshot) -> str:
    """A complete HTML5 document, no JavaScript, every value escaped."""
    # The charts are markup built by core.charts, which escapes every text itself: marked safe, not escaped twice.
    charts = {name: Markup(svg) for name, svg in charts_svg(snapshot).items()}  # noqa: S704  # escaped in core.charts
    return _environment().get_template(TEMPLATE).render(s=snapshot, charts=charts)


def snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    """The same snapshot as JSON-ready data: ISO 8601 times, and the admin CLI's field names (``sku``/``skuId``,
    ``user``/``userId``, ``outcome``, ``reason``, ``updatedAt``; the sweeps as `licensing sweep --json`)."""
    return {
        "takenAt": snapshot.taken_at.isoformat(),
        "lowSeatThreshold": snapshot.low_seat_threshold,
        "seats": [_seat(s) for s in snapshot.seats],
        "outcomes": dict(snapshot.outcomes),
        "outcomesRecountedAt": _iso(snapshot.recounted_at),
        "outcomesWarning": snapshot.totals_warning or None,
        "lastSweep": _sweep(snapshot.sweep) if snapshot.sweep else None,
        "sweeps": [_sweep(s) for s in snapshot.sweeps],
        "recentFailures": [_failure(f) for f in snapshot.failures],
        "history": [
            {"day": p.day.isoformat(), "outcomes": dict(p.outcomes), "seatsUsed": dict(p.seats_used)}
            for p in snapshot.history
        ],
        "health": _health(snapshot.health) if snapshot.health else None,
        "forecast": _forecast(snapshot.forecast) if snapshot.forecast else None,
        "forecastProblem": snapshot.forecast_problem or None,
    }


def _seat(s: SeatLine) -> dict[str, Any]:
    return {
        "sku": s.part_number,
        "skuId": s.sku_id,
        "enabled": s.enabled,
        "consumed": s.consumed,
        "free": s.free,
        "warning": s.warning,
        "suspended": s.suspended,
        "low": s.low,
    }


def _sweep(s: SweepOverview) -> dict[str, Any]:
    return {
        "runId": s.run_id,
        "mode": s.mode,
        "read": s.read,
        "started": _iso(s.started),
        "ended": _iso(s.ended),
        "usersSeen": s.users_seen,
        "usersDrifted": s.users_drifted,
        "fixesEnqueued": s.fixes_enqueued,
        "drift": dict(s.drift),
        "outcome": s.outcome,
        "failure": s.failure,
    }


def _health(h: Health) -> dict[str, Any]:
    sub = h.subscription
    return {
        "queues": [{"queue": q.name, "messages": q.messages, "poison": q.poison} for q in h.queues],
        "subscription": {"state": sub.state, "expiresAt": _iso(sub.expires_at), "text": sub.text()},
        "seatsReadAt": _iso(h.seats_read_at),
        "seatsAgeSeconds": int(h.seats_age.total_seconds()) if h.seats_age is not None else None,
    }


def _forecast(f: Forecast) -> dict[str, Any]:
    return {"takenAt": f.taken_at.isoformat(), "days": f.days, "skus": [s.as_json() for s in f.skus]}


def _failure(f: Failure) -> dict[str, Any]:
    return {
        "user": f.user_principal_name or f.user_key,
        "userId": f.user_key,
        "sku": f.sku,
        "outcome": f.outcome,
        "reason": f.reason,
        "updatedAt": f.at.isoformat(),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(UTC) if value.tzinfo else value:%Y-%m-%d %H:%M:%S} UTC"  # Table storage keeps UTC


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "-"
