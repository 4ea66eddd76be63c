"""The status page's pure rendering: escaping, counts, seat bars, the low-seat warning, JSON and ?format."""

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from licensing.core.forecast import Forecast, SkuForecast
from licensing.core.history import DayPoint
from licensing.core.records import OUTCOMES
from licensing.functions.status_render import page, render_html, requested_format, snapshot_json
from licensing.services.overview_health import Health, QueueDepth, subscription_health
from licensing.services.overview_model import Failure, Snapshot, SweepOverview, seat_lines
from licensing.services.reply import Reply
from tests.unit.catalog import catalog
from tests.unit.html_tree import Element, field_text, find, parse

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
HOSTILE_SKU = "<script>alert('sku')</script>"
RUN = SweepOverview("run1", "report", "full", T0, T0, 36, 5, 0, (("missing-license", 4), ("reclaim", 1)))
FAILED_RUN = SweepOverview(
    "run0", "report", "delta", T0 - timedelta(days=1), T0, 0, 0, 0, (("missing-license", 2),), "failed", "out of time"
)


def history(days: int = 30) -> tuple[DayPoint, ...]:
    """Verified rows on odd days, EMS seats from the 28th day on (earlier days had no snapshot)."""
    first = date(2025, 1, 31)
    return tuple(
        DayPoint(
            first + timedelta(days=i),
            tuple((o, i % 2 if o == "verified" else 0) for o in OUTCOMES),
            (("EMS", 80 + i), (HOSTILE_SKU, 1)) if i >= days - 3 else (),
        )
        for i in range(days)
    )


def health(**changes: Any) -> Health:
    base = Health(
        queues=(
            QueueDepth("license-requests", 3),
            QueueDepth("license-requests-poison", 2),
            QueueDepth("license-verify", 0),
            QueueDepth("license-verify-poison", 0),
        ),
        subscription=subscription_health(configured=True, expires_at=T0 + timedelta(days=2, hours=3), now=T0),
        seats_read_at=T0 - timedelta(seconds=42),
        seats_age=timedelta(seconds=42),
    )
    return replace(base, **changes)


def forecast() -> Forecast:
    ems = SkuForecast("EMS", 14, 23, ((date(2025, 3, 10), 10), (date(2025, 3, 14), 13)), date(2025, 3, 14))
    e5 = SkuForecast("EMSPREMIUM", 3, 1, ((date(2025, 3, 20), 1),), None)
    return Forecast(T0, 30, (ems, e5))


HOSTILE_UPN = '<img src=x onerror="alert(1)">@contoso.example'
HOSTILE_REASON = "</td><script>alert('x')</script> & \"quoted\""


def snapshot(**changes: Any) -> Snapshot:
    base = Snapshot(
        taken_at=T0,
        low_seat_threshold=5,
        seats=seat_lines(catalog(ems_free=10, premium_free=0, edu_free=4), 5),
        outcomes=tuple(zip(OUTCOMES, (1, 7, 2, 0, 1, 3, 4, 0), strict=True)),
        sweeps=(RUN, FAILED_RUN),
        failures=(
            Failure("u1", HOSTILE_UPN, "EMS", "failed", HOSTILE_REASON, T0),
            Failure("ghost", "", None, "rejected", "user ghost does not exist", T0),
        ),
        history=history(),
        health=health(),
        forecast=forecast(),
    )
    return replace(base, **changes)


def failure_rows(elements: list[Element]) -> list[Element]:
    return [r for r in find(elements, "tr") if "data-failure" in r.attrs]


def seat_row(elements: list[Element], sku: str) -> Element:
    [table] = find(elements, "table", id="seats")
    [row] = find(elements, "tr", within=table, data_sku=sku)
    return row


def test_hostile_upn_and_reason_are_text_not_markup() -> None:
    """Angle brackets, quotes and ampersands from data come out escaped: no script or img element appears."""
    html = render_html(snapshot())
    elements = parse(html)
    assert not find(elements, "script")
    assert not find(elements, "img")
    assert "<script>" not in html
    rows = failure_rows(elements)
    assert field_text(elements, rows[0], "user") == HOSTILE_UPN
    assert field_text(elements, rows[0], "reason") == " ".join(HOSTILE_REASON.split())


def test_outcome_counts_and_total_are_shown() -> None:
    """One row per outcome with its count (hook data-outcome), and the total in the footer."""
    elements = parse(render_html(snapshot()))
    [table] = find(elements, "table", id="outcomes")
    shown = {
        r.attrs["data-outcome"]: field_text(elements, r, "count")
        for r in find(elements, "tr", within=table)
        if r.attrs.get("data-outcome")
    }
    assert shown == {
        "assigned": "1",
        "verified": "7",
        "pending": "2",
        "action-required": "0",
        "blocked": "1",
        "failed": "3",
        "rejected": "4",
        "removed": "0",
    }
    [total] = [e for e in elements if e.attrs.get("id") == "outcomes-total"]
    assert total.text == "18"


def test_seat_bar_is_a_labelled_meter_of_consumed_over_enabled() -> None:
    """Each SKU row has a <meter> with value=consumed, max=enabled and an aria-label saying so in words."""
    elements = parse(render_html(snapshot()))
    row = seat_row(elements, "EMS")
    assert [field_text(elements, row, f) for f in ("enabled", "consumed", "free", "suspended")] == [
        "100",
        "90",
        "10",
        "0",
    ]
    [meter] = find(elements, "meter", within=row)
    assert (meter.attrs["min"], meter.attrs["max"], meter.attrs["value"]) == ("0", "100", "90")
    assert meter.attrs["aria-label"] == "EMS: 90 of 100 seats consumed"
    assert meter.attrs["high"] == "95"  # above enabled - threshold the bar is drawn as bad
    assert "90 / 100 (90%)" in field_text(elements, row, "usage")


def test_low_seat_warning_is_words_not_only_colour() -> None:
    """A SKU under the threshold says 'Low: N free' and carries data-low; one above says OK."""
    elements = parse(render_html(snapshot()))
    low, fine = seat_row(elements, "INTUNE_EDU"), seat_row(elements, "EMS")
    assert (low.attrs["data-low"], field_text(elements, low, "state")) == ("true", "Low: 4 free")
    assert (fine.attrs["data-low"], field_text(elements, fine, "state")) == ("false", "OK")
    [premium] = find(elements, "meter", id="meter-EMSPREMIUM")
    assert (premium.attrs["max"], premium.attrs["value"], premium.attrs["high"]) == ("2", "2", "0")


def test_document_is_accessible_html5_without_javascript() -> None:
    """lang, title, one h1, captions on every table, scoped header cells, a CSP that forbids scripts."""
    html = render_html(snapshot())
    elements = parse(html)
    assert html.startswith("<!doctype html>")
    assert find(elements, "html")[0].attrs["lang"] == "en"
    assert find(elements, "title")[0].text == "Licensing status"
    assert len(find(elements, "h1")) == 1
    tables = find(elements, "table")
    assert {t.attrs["id"] for t in tables} == {"queues", "forecast", "seats", "outcomes", "drift", "sweeps", "failures"}
    assert all(len(find(elements, "caption", within=t)) == 1 for t in tables)
    assert all(th.attrs.get("scope") in {"col", "row"} for th in find(elements, "th"))
    [csp] = find(elements, "meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in (csp.attrs["content"] or "")


def test_empty_tenant_and_history_say_so() -> None:
    """No SKUs, no sweep and no failures each render a sentence instead of an empty table."""
    elements = parse(render_html(snapshot(seats=(), sweeps=(), failures=(), history=(), forecast=None)))
    ids = {e.attrs.get("id") for e in elements}
    assert {"no-seats", "no-sweep", "no-failures", "no-forecast"} <= ids
    assert {"seats", "drift", "sweeps", "failures", "forecast"}.isdisjoint(ids)
    assert len(find(elements, "svg")) == 3  # the charts still stand, saying there is nothing yet
    assert [t.text for t in find(elements, "text") if t.attrs.get("class") == "empty"] == [
        "No seat snapshot yet",
        "Nothing recorded in these days",
        "No sweep has run yet",
    ]


def test_drift_rows_and_request_level_failures() -> None:
    """Drift per kind with data-kind hooks; a failure without a SKU shows '(request)' and the user key."""
    elements = parse(render_html(snapshot()))
    drift = {
        r.attrs["data-kind"]: field_text(elements, r, "count") for r in find(elements, "tr") if r.attrs.get("data-kind")
    }
    assert drift == {"missing-license": "4", "reclaim": "1"}
    ghost = failure_rows(elements)[1]
    assert [field_text(elements, ghost, f) for f in ("user", "sku", "outcome")] == ["ghost", "(request)", "rejected"]


def test_json_is_the_same_snapshot() -> None:
    """format=json: the same numbers in the CLI's field names (user/userId, updatedAt), ISO times, raw text."""
    data = json.loads(json.dumps(snapshot_json(snapshot())))
    assert data["takenAt"] == "2025-03-01T09:30:00+00:00"
    assert data["outcomes"]["verified"] == 7
    edu = next(s for s in data["seats"] if s["sku"] == "INTUNE_EDU")
    assert (edu["enabled"], edu["consumed"], edu["free"], edu["low"]) == (30, 26, 4, True)
    assert data["lastSweep"]["drift"] == {"missing-license": 4, "reclaim": 1}
    assert (data["recentFailures"][0]["user"], data["recentFailures"][0]["userId"]) == (HOSTILE_UPN, "u1")
    assert data["recentFailures"][0]["updatedAt"] == T0.isoformat()
    assert (data["recentFailures"][1]["user"], data["recentFailures"][1]["userId"]) == ("ghost", "ghost")
    assert data["recentFailures"][1]["sku"] is None
    assert snapshot_json(snapshot(sweeps=()))["lastSweep"] is None


def test_format_parameter_chooses_html_or_json_and_refuses_others() -> None:
    """No format or html -> HTML; json -> JSON; anything else -> 400 naming html and json."""
    assert requested_format({}) == "html"
    assert requested_format({"format": "json"}) == "json"
    refused = requested_format({"format": "xml"})
    assert isinstance(refused, Reply)
    assert refused.status == 400
    assert refused.body == {"error": "unknown format 'xml'; use one of: html, json"}
    assert page(snapshot(), "html").content_type == "text/html"
    assert page(snapshot(), "json").content_type == "application/json"


def test_three_charts_with_titles_axis_labels_and_legends() -> None:
    """Outcomes per day, seats per SKU and sweep drift: inline SVG, named (role=img, title), no script."""
    html = render_html(snapshot())
    elements = parse(html)
    charts = {svg.attrs["data-chart"]: svg for svg in find(elements, "svg")}
    assert list(charts) == ["seats-per-sku", "outcomes-per-day", "sweep-drift"]
    for svg in charts.values():
        assert svg.attrs["role"] == "img"
        assert find(elements, "title", within=svg)[0].text == svg.attrs["aria-label"]
        assert {"x-label", "y-label"} <= {t.attrs.get("class") for t in find(elements, "text", within=svg)}
    outcome_bars = [r for r in find(elements, "rect", within=charts["outcomes-per-day"]) if r.attrs["class"] == "bar"]
    assert len(outcome_bars) == 15  # verified on the 15 odd days of 30, nothing else
    assert {r.attrs["data-series"] for r in outcome_bars} == {"verified"}
    points = [c.attrs["data-series"] for c in find(elements, "circle", within=charts["seats-per-sku"])]
    assert points.count("EMS") == 3
    assert points.count(HOSTILE_SKU) == 3
    drift = [
        r.attrs["data-value"] for r in find(elements, "rect", within=charts["sweep-drift"]) if r.attrs["class"] == "bar"
    ]
    assert drift == ["2", "4", "1"]  # oldest run first: run0 (2 missing), then run1 (4 missing, 1 reclaim)
    assert "<script>" not in html


def test_forecast_says_when_a_sku_runs_out_in_bold_red_words() -> None:
    """The running-out message is a sentence (class runs-out); every SKU has free, scheduled and runs-out cells."""
    elements = parse(render_html(snapshot()))
    [alert] = [p for p in find(elements, "p") if "data-forecast-alert" in p.attrs]
    assert alert.text == "EMS runs out on 2025-03-14: 23 hires scheduled, 14 seats free"
    assert alert.attrs["class"] == "runs-out"
    [table] = find(elements, "table", id="forecast")
    rows = {r.attrs["data-sku"]: r for r in find(elements, "tr", within=table) if r.attrs.get("data-sku")}
    assert [field_text(elements, rows["EMS"], f) for f in ("free", "scheduled", "runs-out-on")] == [
        "14",
        "23",
        "2025-03-14",
    ]
    assert field_text(elements, rows["EMSPREMIUM"], "runs-out-on") == "-"


def test_a_forecast_that_runs_out_nowhere_says_so_and_a_policy_problem_is_shown() -> None:
    """No SKU short: one reassuring sentence; no forecast because of the policy: the reason instead."""
    calm = replace(forecast(), skus=(replace(forecast().skus[0], runs_out_on=None),))
    assert any(e.attrs.get("id") == "forecast-ok" for e in parse(render_html(snapshot(forecast=calm))))
    broken = parse(render_html(snapshot(forecast=None, forecast_problem="policy.yaml: rule 2 names no SKU")))
    [why] = [e for e in broken if e.attrs.get("id") == "no-forecast"]
    assert why.text == "No forecast: policy.yaml: rule 2 names no SKU"


def test_health_shows_queue_depths_with_poison_highlighted_and_the_subscription() -> None:
    """Four queues with counts; a non-empty poison queue is marked in words; the expiry is said relative to now."""
    elements = parse(render_html(snapshot()))
    rows = {r.attrs["data-queue"]: r for r in find(elements, "tr") if r.attrs.get("data-queue")}
    assert {q: field_text(elements, r, "messages") for q, r in rows.items()} == {
        "license-requests": "3",
        "license-requests-poison": "2",
        "license-verify": "0",
        "license-verify-poison": "0",
    }
    assert field_text(elements, rows["license-requests-poison"], "state") == "Poisoned: 2 to look at"
    assert rows["license-requests-poison"].attrs.get("class") == "alarm"
    assert "class" not in rows["license-verify-poison"].attrs
    [sub] = [e for e in elements if e.attrs.get("data-field") == "subscription"]
    assert (sub.attrs["data-state"], sub.text.split(" (")[0]) == ("ok", "expires in 2 days")


def test_seat_numbers_say_how_old_they_are_never_now() -> None:
    """Cached seats: 'read from Graph 42 s ago', in the header and in the health list."""
    elements = parse(render_html(snapshot()))
    [age] = [e for e in elements if e.attrs.get("id") == "seats-age"]
    assert (age.text, age.attrs["data-seconds"]) == ("42 s ago", "42")
    [dd] = [e for e in elements if e.attrs.get("data-field") == "seats-age"]
    assert dd.text == "read from Graph 42 s ago"
    unknown = parse(render_html(snapshot(health=health(seats_read_at=None, seats_age=None))))
    assert [e.text for e in unknown if e.attrs.get("id") == "seats-age"] == [
        "When the seat numbers were read from Graph is not known."
    ]


def test_a_failed_sweep_shows_why_it_stopped() -> None:
    """The recent-sweeps table marks a failed run and gives its reason."""
    elements = parse(render_html(snapshot()))
    [failed] = [r for r in find(elements, "tr") if r.attrs.get("data-run-id") == "run0"]
    assert (failed.attrs["data-outcome"], failed.attrs.get("class")) == ("failed", "alarm")
    assert field_text(elements, failed, "outcome") == "failed: out of time"


def test_json_has_history_health_sweeps_and_forecast() -> None:
    """The new blocks in the CLI's vocabulary: camelCase, arrays for lists, sku, ISO dates and times."""
    data = json.loads(json.dumps(snapshot_json(snapshot())))
    assert len(data["history"]) == 30
    assert data["history"][-1]["seatsUsed"] == {"EMS": 109, HOSTILE_SKU: 1}
    assert data["history"][1]["outcomes"]["verified"] == 1
    assert [s["runId"] for s in data["sweeps"]] == ["run1", "run0"]
    assert (data["sweeps"][1]["outcome"], data["sweeps"][1]["failure"]) == ("failed", "out of time")
    queues = {q["queue"]: (q["messages"], q["poison"]) for q in data["health"]["queues"]}
    assert queues["license-requests-poison"] == (2, True)
    assert data["health"]["subscription"]["state"] == "ok"
    assert data["health"]["subscription"]["expiresAt"] == (T0 + timedelta(days=2, hours=3)).isoformat()
    assert (data["health"]["seatsAgeSeconds"], data["health"]["seatsReadAt"]) == (42, "2025-03-01T09:29:18+00:00")
    ems = data["forecast"]["skus"][0]
    assert (ems["sku"], ems["free"], ems["scheduled"], ems["runsOutOn"]) == ("EMS", 14, 23, "2025-03-14")
    assert ems["byDate"] == [{"date": "2025-03-10", "hires": 10}, {"date": "2025-03-14", "hires": 13}]
    assert ems["message"] == "EMS runs out on 2025-03-14: 23 hires scheduled, 14 seats free"
    assert data["forecast"]["skus"][1]["runsOutOn"] is None
    assert snapshot_json(snapshot(forecast=None, forecast_problem="bad"))["forecastProblem"] == "bad"


def test_totals_say_since_which_recount_they_were_counted() -> None:
    """After a recount the page says the totals are counted at write time since then; the JSON gives the time."""
    recounted = T0 - timedelta(minutes=35)
    elements = parse(render_html(snapshot(recounted_at=recounted)))
    [basis] = find(elements, "p", id="totals-basis")
    assert basis.text == "Counted at write time since the recount of 2025-03-01 08:55:00 UTC."
    assert "alarm-text" not in (basis.attrs.get("class") or "")
    data = snapshot_json(snapshot(recounted_at=recounted))
    assert (data["outcomesRecountedAt"], data["outcomesWarning"]) == (recounted.isoformat(), None)


def test_totals_never_recounted_over_existing_rows_warn_to_run_the_recount() -> None:
    """Rows and no recount yet: a warning in words (not only colour) naming the command and the nightly snapshot."""
    warning = "totals not recounted yet: run `licensing status --recount` (or wait for the 23:55 UTC snapshot)"
    elements = parse(render_html(snapshot(rows_uncounted=True)))
    [basis] = find(elements, "p", id="totals-basis", role="alert")
    assert basis.text == warning
    assert basis.attrs["class"] == "alarm-text"
    data = snapshot_json(snapshot(rows_uncounted=True))
    assert (data["outcomesRecountedAt"], data["outcomesWarning"]) == (None, warning)


def test_a_negative_total_warns_even_after_a_recount() -> None:
    """A total below zero cannot be right: the page asks for a recount whether or not one ran before."""
    negative = tuple((outcome, -1 if outcome == "pending" else 0) for outcome in OUTCOMES)
    never = snapshot(outcomes=negative)
    since = snapshot(outcomes=negative, recounted_at=T0 - timedelta(days=1))
    assert never.totals_warning.startswith("totals not recounted yet: run `licensing status --recount`")
    assert since.totals_warning.startswith("a total is negative: run `licensing status --recount`")
    [basis] = find(parse(render_html(since)), "p", id="totals-basis")
    assert basis.text == since.totals_warning


def test_an_empty_table_never_recounted_needs_no_warning() -> None:
    """A fresh install: nothing to recount, so no warning; the page says no recount ran yet."""
    fresh = snapshot(outcomes=tuple((outcome, 0) for outcome in OUTCOMES))
    [basis] = find(parse(render_html(fresh)), "p", id="totals-basis")
    assert basis.text == "Counted at write time since the first status write (no recount yet)."
    assert snapshot_json(fresh)["outcomesWarning"] is None
