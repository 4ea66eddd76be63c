"""The status page's pure rendering: escaping, counts, seat bars, the low-seat warning, JSON and ?format."""

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from licensing.core.records import OUTCOMES
from licensing.functions.status_render import page, render_html, requested_format, snapshot_json
from licensing.services.overview import Failure, Snapshot, SweepOverview, seat_lines
from licensing.services.reply import Reply
from tests.unit.catalog import catalog
from tests.unit.html_tree import Element, field_text, find, parse

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
HOSTILE_UPN = '<img src=x onerror="alert(1)">@contoso.example'
HOSTILE_REASON = "</td><script>alert('x')</script> & \"quoted\""


def snapshot(**changes: Any) -> Snapshot:
    base = Snapshot(
        taken_at=T0,
        low_seat_threshold=5,
        seats=seat_lines(catalog(ems_free=10, premium_free=0, edu_free=4), 5),
        outcomes=tuple(zip(OUTCOMES, (1, 7, 2, 0, 1, 3, 4, 0), strict=True)),
        sweep=SweepOverview("run1", "report", "full", T0, T0, 36, 5, 0, (("missing-license", 4), ("reclaim", 1))),
        failures=(
            Failure("u1", HOSTILE_UPN, "EMS", "failed", HOSTILE_REASON, T0),
            Failure("ghost", "", None, "rejected", "user ghost does not exist", T0),
        ),
    )
    return replace(base, **changes)


def failure_rows(elements: list[Element]) -> list[Element]:
    return [r for r in find(elements, "tr") if "data-failure" in r.attrs]


def seat_row(elements: list[Element], sku: str) -> Element:
    [row] = find(elements, "tr", data_sku=sku)
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
    shown = {r.attrs["data-outcome"]: field_text(elements, r, "count") for r in find(elements, "tr", within=table)
             if r.attrs.get("data-outcome")}  # fmt: skip
    assert shown == {"assigned": "1", "verified": "7", "pending": "2", "action-required": "0", "blocked": "1",
                     "failed": "3", "rejected": "4", "removed": "0"}  # fmt: skip
    [total] = [e for e in elements if e.attrs.get("id") == "outcomes-total"]
    assert total.text == "18"


def test_seat_bar_is_a_labelled_meter_of_consumed_over_enabled() -> None:
    """Each SKU row has a <meter> with value=consumed, max=enabled and an aria-label saying so in words."""
    elements = parse(render_html(snapshot()))
    row = seat_row(elements, "EMS")
    assert [field_text(elements, row, f) for f in ("enabled", "consumed", "free", "suspended")] == [
        "100", "90", "10", "0",
    ]  # fmt: skip
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
    assert {t.attrs["id"] for t in tables} == {"seats", "outcomes", "drift", "failures"}
    assert all(len(find(elements, "caption", within=t)) == 1 for t in tables)
    assert all(th.attrs.get("scope") in {"col", "row"} for th in find(elements, "th"))
    [csp] = find(elements, "meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in (csp.attrs["content"] or "")


def test_empty_tenant_and_history_say_so() -> None:
    """No SKUs, no sweep and no failures each render a sentence instead of an empty table."""
    elements = parse(render_html(snapshot(seats=(), sweep=None, failures=())))
    ids = {e.attrs.get("id") for e in elements}
    assert {"no-seats", "no-sweep", "no-failures"} <= ids
    assert {"seats", "drift", "failures"}.isdisjoint(ids)


def test_drift_rows_and_request_level_failures() -> None:
    """Drift per kind with data-kind hooks; a failure without a SKU shows '(request)' and the user key."""
    elements = parse(render_html(snapshot()))
    drift = {r.attrs["data-kind"]: field_text(elements, r, "count") for r in find(elements, "tr")
             if r.attrs.get("data-kind")}  # fmt: skip
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
    assert snapshot_json(snapshot(sweep=None))["lastSweep"] is None


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
