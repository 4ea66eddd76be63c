"""GET /api/status in real headless Chromium: the numbers read off the page match what the tenant and tables hold.

Real data: hires, a seat shortage, an unknown (hostile) user, an unreadable message and an HR leaver all go
through the queue functions registered in function_app.py (so the status counters move as the recorder writes);
a real sweep runs in report mode and a failed one is recorded; future hires arrive signed through the HR webhook
(the forecast's data); the subscription timer and the daily snapshot timer run. The page is served by LocalHttp and
opened with Playwright in Debian's chromium (never `playwright install`); a screenshot goes to /tmp/status-page.png.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import BrowserContext, BrowserType, Dialog, Page, async_playwright

import function_app
from licensing import composition
from licensing.adapters.storage import counters
from licensing.adapters.storage.account import QUEUES
from licensing.adapters.storage.sweep_store import drift_rows, record_run
from licensing.core.errors import TransientError
from licensing.core.model import Catalog
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import LEAVER, StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost
from licensing.dev.localhttp import LocalHttp
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from licensing.services.sweep import SweepResult, run_sweep
from tests.conftest import wipe_storage
from tests.e2e.test_hr_webhook import event, post, signed
from tests.helpers import EMS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_UPN = "<img src=x onerror=alert(1)>@contoso.onmicrosoft.com"
HOSTILE_BODY = "<script>alert('status')</script>"
FAILURES = ("failed", "blocked", "rejected", "action-required")
SEAT_FIELDS = ("enabled", "consumed", "free", "warning", "suspended")
ADMIN_PENDING = "grace.thompson@contoso.onmicrosoft.com"  # one of her plans waits for an admin to activate it
SCREENSHOT = Path("/tmp/status-page.png")  # looked at by whoever changes the page
EMS_FREE = 6  # after the hires: 4 enabled seats left + the 2 grace-period ones; 7 future hires outrun them
FUTURE_HIRES = 7
POISON_QUEUE = f"{LICENSE_REQUESTS_QUEUE}-poison"
FAST = {  # no waiting: verify at once, give up on a missing user or a full SKU on the first attempt
    "LICENSING_VERIFY_DELAY_SECONDS": "0",
    "LICENSING_BLOCKED_MAX_ATTEMPTS": "1",
    "LICENSING_NOT_FOUND_MAX_ATTEMPTS": "1",
}


@dataclass
class World:
    """The app's services, the tenant, the served functions and the sweep that ran."""

    services: Services
    tenant: EmulatedTenant
    http: LocalHttp
    sweep: SweepResult
    failed_run: SweepResult

    def url(self, query: str = "") -> str:
        """The status page's URL (see status_url)."""
        return status_url(self.http, query)


def status_url(http: LocalHttp, query: str = "") -> str:
    """The status page's URL with a function key, as an operator opens it."""
    return f"{http.base_url}/status?code=local-key{'&' + query if query else ''}"


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium; missing is a failure with the fix, not a skip."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Debian's chromium) and test again")
    return CHROMIUM


@pytest.fixture
async def world(
    monkeypatch: pytest.MonkeyPatch, app_env: dict[str, str], azurite: Azurite, tenant: EmulatedTenant
) -> AsyncIterator[World]:
    """Onboard, block, reject and offboard through the real functions, sweep in report mode, record a failed run,
    schedule future hires, and run the subscription and daily snapshot timers."""
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    await wipe_storage(azurite.connection_string)
    await composition.reset()
    services = await composition.services()
    queue = services.storage.queue(LICENSE_REQUESTS_QUEUE)
    host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=0, poll_interval=0.05)
    tenant.state.force_status(ADMIN_PENDING, "AAD_PREMIUM", "PendingActivation")
    tenant.state.skus[EMS].warning = 2  # grace-period seats: shown, and free (enabled + warning - consumed)
    try:
        async with LocalHttp(function_app.app) as http:
            # First, as at 23:55 the night before: today's seats snapshot, and a recount (of nothing yet), so every
            # count below was moved by the status writes themselves, not repaired by the recount.
            await http.run_timer("daily_snapshot")
            await _seat_history(services)
            hires = ["aisha.khan", "noah.williams", "grace.thompson", "victoria.hayes", "marcus.lee", "eleanor.vance"]
            for user in [f"{name}@contoso.onmicrosoft.com" for name in hires] + [HOSTILE_UPN]:
                await queue.send_message(json.dumps(_request(user)))  # 3 executives for 2 EMSPREMIUM seats
            await queue.send_message(HOSTILE_BODY)  # not JSON: rejected, no user named
            await host.run_until_idle(limit_seconds=30)
            leaver = tenant.state.user("noah.williams@contoso.onmicrosoft.com")
            await queue.send_message(json.dumps(_request(leaver.id, source="hr", action="remove")))
            await host.run_until_idle(limit_seconds=30)
            assert host.stats.poisoned == {}
            sweep = await run_sweep(services, mode="report")
            failed_run = await _failed_run(services, sweep)
            tenant.state.skus[EMS].enabled = tenant.state.consumed_units(EMS) + EMS_FREE - 2
            await _schedule_hires()
            await services.storage.send(POISON_QUEUE, {"user": "stuck@contoso.onmicrosoft.com"})  # as the host gives up
            services.settings = replace(
                services.settings, graph_notification_url=f"{http.base_url}/graph/notifications?code=function-key"
            )
            await http.run_timer("graph_subscription")  # Graph's handshake reaches our endpoint; the expiry is kept
            yield World(services, tenant, http, sweep, failed_run)
    finally:
        await host.close()
        await composition.reset()


async def _failed_run(services: Services, sweep: SweepResult) -> SweepResult:
    """An earlier run that stopped, recorded as the sweep records one (sweep_record.fail): outcome failed, and why."""
    started = sweep.started - timedelta(days=1)
    failed = SweepResult(run_id=uuid.uuid4().hex[:12], mode="report", read="delta", started=started)
    failed.outcome, failed.failure, failed.ended = "failed", "out of time: not finished within 540 s", started
    failed.drift.update({"missing-license": 1})
    await record_run(services.storage, failed.summary(), started=started)
    return failed


async def _schedule_hires() -> None:
    """Sales hires (rule everyone: EMS) starting 8 to 14 days out, signed through the HR webhook: held for later."""
    today = datetime.now(UTC).date()
    hires = [
        event(
            f"future-{n}",
            userPrincipalName=f"future{n}@contoso.onmicrosoft.com",
            startDate=(today + timedelta(days=8 + n)).isoformat(),
        )
        for n in range(FUTURE_HIRES)
    ]
    status, answer = await post(signed({"events": hires}))
    assert status == 202, answer
    assert {s["status"] for s in answer["scheduled"]} == {"held"}


async def _seat_history(services: Services) -> None:
    """Two earlier days' seat snapshots, as the daily_snapshot timer left them (today's comes from the timer)."""
    today = services.clock().date()
    await counters.record_seats(services.storage, day=today - timedelta(days=5), seats={"EMS": 3, "EMSPREMIUM": 1})
    await counters.record_seats(services.storage, day=today - timedelta(days=2), seats={"EMS": 5})


def _request(user: str, **extra: str) -> dict[str, str]:
    return {"user": user, "source": "manual", "requestId": uuid.uuid4().hex, **extra}


async def expected(world: World) -> dict[str, Any]:
    """What the page must say, computed from the tenant's own state and the raw tables."""
    state, services = world.tenant.state, world.services
    threshold = services.settings.low_seat_threshold
    seats = {}
    for sku in state.skus.values():
        consumed = state.consumed_units(sku.id)
        free = max(sku.enabled + sku.warning - consumed, 0)
        seats[sku.part_number] = {
            "enabled": sku.enabled,
            "consumed": consumed,
            "free": free,
            "warning": sku.warning,
            "suspended": sku.suspended,
            "low": free < threshold,
        }
    rows = [row async for row in services.storage.statuses()]
    outcomes = Counter(row.outcome for row in rows if row.sku != LEAVER)
    failed = [r for r in rows if r.outcome in FAILURES]
    assert len(failed) <= 20  # all of them fit on the page, so the order is checked on the page itself
    drift_users: Counter[str] = Counter()
    for row in await drift_rows(services.storage, world.sweep.run_id):
        drift_users.update(row["Kinds"].split(","))
    assert drift_users == world.sweep.drift  # one finding per kind per user here, so users == findings
    return {
        "seats": seats,
        "outcomes": {o: n for o, n in outcomes.items() if n},
        "drift": dict(drift_users),
        "failures": sorted(_failure(r) for r in failed),
        "tombstones": sum(1 for row in rows if row.sku == LEAVER),
    }


def _failure(row: StatusRecord) -> tuple[str, str, str, str]:
    return row.user_principal_name or row.user_key, _sku(row.sku), row.outcome, _words(row.reason)


def _sku(sku: str) -> str:
    return "-" if sku == "-" or sku.startswith("message-") else sku  # request-level rows name no SKU


def _words(text: str) -> str:
    return " ".join(text.split())


ROWS_JS = """rows => rows.map(row => ({
    data: {...row.dataset},
    cells: Object.fromEntries([...row.querySelectorAll("[data-field]")].map(c => [c.dataset.field, c.innerText])),
}))"""  # one round trip per table; innerText is the text as the browser laid it out


async def _rows(page: Page, selector: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await page.locator(selector).evaluate_all(ROWS_JS)
    return rows


async def read_page(page: Page) -> dict[str, Any]:
    """Every number and failure row as the browser rendered them (the hooks: data-sku, data-outcome...)."""
    seats = {}
    for row in await _rows(page, "#seats tbody tr"):
        cells, low = row["cells"], row["data"]["low"] == "true"
        assert cells["state"].startswith("Low" if low else "OK")
        seats[row["data"]["sku"]] = {**{f: int(cells[f]) for f in SEAT_FIELDS}, "low": low}
    outcomes = {r["data"]["outcome"]: int(r["cells"]["count"]) for r in await _rows(page, "#outcomes tbody tr")}
    drift = {r["data"]["kind"]: int(r["cells"]["count"]) for r in await _rows(page, "#drift tbody tr")}
    failures = []
    for row in await _rows(page, "#failures tbody tr"):
        user, sku, outcome, reason = (_words(row["cells"][f]) for f in ("user", "sku", "outcome", "reason"))
        failures.append((user, "-" if sku == "(request)" else sku, outcome, reason))
    return {
        "seats": seats,
        "outcomes": {o: n for o, n in outcomes.items() if n},
        "drift": {k: n for k, n in drift.items() if n},
        "failures": failures,
    }


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    """The JSON variant in the same shape as read_page."""
    return {
        "seats": {s["sku"]: {k: s[k] for k in (*SEAT_FIELDS, "low")} for s in data["seats"]},
        "outcomes": {o: n for o, n in data["outcomes"].items() if n},
        "drift": {k: n for k, n in data["lastSweep"]["drift"].items() if n},
        "failures": [(f["user"], f["sku"] or "-", f["outcome"], _words(f["reason"])) for f in data["recentFailures"]],
    }


async def launch(browser: BrowserType, chromium: Path, profile: Path, *, javascript: bool) -> BrowserContext:
    """Chromium headless with a fresh profile directory of its own."""
    return await browser.launch_persistent_context(
        profile, executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS, java_script_enabled=javascript
    )


async def test_status_page_in_chromium_shows_what_the_tables_hold(world: World, chromium: Path, tmp_path: Path) -> None:
    """Seats, outcome counts (tombstone excluded), drift by kind and failures match storage; JSON and no-JS agree."""
    want = await expected(world)
    assert want["tombstones"] == 1  # the leaver's marker exists and must not be counted as "removed"
    assert {"verified", "blocked", "rejected", "removed", "action-required"} <= set(want["outcomes"])
    assert want["seats"]["EMS"]["warning"] == 2
    assert want["seats"]["EMSPREMIUM"]["low"]
    assert not want["seats"]["EMS"]["low"]
    dialogs: list[str] = []
    console: list[str] = []  # a CSP violation (an inline SVG the policy blocked) would be reported here

    async def note(dialog: Dialog) -> None:  # an alert() would mean injected markup ran
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with async_playwright() as playwright:
        context = await launch(playwright.chromium, chromium, tmp_path / "profile", javascript=True)
        page = context.pages[0] if context.pages else await context.new_page()
        page.on("dialog", note)
        page.on("console", lambda message: console.append(message.text))
        response = await page.goto(world.url())
        assert response is not None
        assert response.status == 200
        assert (await response.header_value("content-type") or "").startswith("text/html")
        await page.screenshot(path=SCREENSHOT, full_page=True)
        png = await asyncio.to_thread(SCREENSHOT.read_bytes)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(png) > 20_000
        shown = await read_page(page)
        assert {**shown, "failures": sorted(shown["failures"])} == {k: want[k] for k in shown}
        times = [await t.get_attribute("datetime") or "" for t in await page.locator("#failures time").all()]
        assert times == sorted(times, reverse=True)  # newest first (ISO 8601 in UTC sorts as text)
        await _check_markup(page, shown)
        await _check_charts(page, world)
        await _check_forecast(page, world)
        await _check_health(page, world)
        answer = await page.request.get(world.url("format=json"))
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("application/json")
        data = await answer.json()
        assert from_json(data) == shown
        await _check_json_health(data, world)
        await context.close()
        no_js = await launch(playwright.chromium, chromium, tmp_path / "profile-nojs", javascript=False)
        plain = no_js.pages[0] if no_js.pages else await no_js.new_page()
        await plain.goto(world.url())
        assert await read_page(plain) == shown
        await no_js.close()
    assert dialogs == []  # nothing from the hostile UPN or message body ever ran
    assert [m for m in console if "Content Security Policy" in m] == []


CHARTS_JS = """svgs => svgs.map(svg => ({
    chart: svg.dataset.chart,
    title: svg.querySelector("title").textContent,
    label: svg.getAttribute("aria-label"),
    role: svg.getAttribute("role"),
    width: svg.getBoundingClientRect().width,
    axes: [...svg.querySelectorAll("text.x-label, text.y-label")].map(t => t.textContent),
    legend: [...svg.querySelectorAll("rect.key")].map(k => k.dataset.series),
    bars: [...svg.querySelectorAll("rect.bar")].map(r => [r.dataset.label, r.dataset.series, Number(r.dataset.value)]),
    points: [...svg.querySelectorAll("circle.point")].map(c => [c.dataset.label, c.dataset.series,
                                                              Number(c.dataset.value)]),
    ceilings: [...svg.querySelectorAll("line.ceiling")].map(c => [c.dataset.series, Number(c.dataset.value)]),
}))"""


async def _check_charts(page: Page, world: World) -> None:
    """Three rendered charts (the CSP let the inline SVG through), named and labelled, whose bars and points are
    exactly the counters' history, the daily seat snapshots and the sweeps' drift in storage."""
    charts = {c["chart"]: c for c in await page.locator("svg.chart").evaluate_all(CHARTS_JS)}
    assert list(charts) == ["seats-per-sku", "outcomes-per-day", "sweep-drift"]
    for chart in charts.values():
        assert chart["role"] == "img"
        assert chart["title"] == chart["label"]
        assert chart["title"]
        assert len(chart["axes"]) == 2
        assert chart["width"] > 300  # laid out, not blocked or collapsed
    today = world.services.clock().date()
    days = await counters.history(world.services.storage, days=30, today=today)
    recorded = [[p.day.isoformat(), outcome, n] for p in days for outcome, n in p.outcomes if n]
    assert recorded  # the status writes of this test were counted on today's point
    assert sorted(charts["outcomes-per-day"]["bars"]) == sorted(recorded)
    snapshots = [[p.day.isoformat(), sku, n] for p in days for sku, n in p.seats_used]
    assert len({day for day, _, _ in snapshots}) == 3  # two seeded days and the timer's today
    assert sorted(charts["seats-per-sku"]["points"]) == sorted(snapshots)
    enabled = {sku.part_number: sku.enabled for sku in world.tenant.state.skus.values()}
    assert dict(charts["seats-per-sku"]["ceilings"]) == enabled
    drift = [[kind, n] for run in (world.failed_run, world.sweep) for kind, n in sorted(run.drift.items()) if n]
    assert sorted(bar[1:] for bar in charts["sweep-drift"]["bars"]) == sorted(drift)
    assert set(charts["sweep-drift"]["legend"]) == {kind for kind, _ in drift}


async def _check_forecast(page: Page, world: World) -> None:
    """The forecast says in bold red words when EMS runs out, as the forecast service computes it from storage."""
    from licensing.services.forecast import take_forecast  # noqa: PLC0415  # the service, to compare with

    runs_out = datetime.now(UTC).date() + timedelta(days=8 + EMS_FREE)  # the seventh hire outruns six seats
    line = f"EMS runs out on {runs_out.isoformat()}: {FUTURE_HIRES} hires scheduled, {EMS_FREE} seats free"
    alert = page.locator("[data-forecast-alert][data-sku='EMS']")
    assert await alert.inner_text() == line
    style = await alert.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).fontWeight]")
    assert style == ["rgb(176, 0, 32)", "700"]
    forecast = await take_forecast(world.services, days=30)
    ems = next(s for s in forecast.skus if s.part_number == "EMS")
    assert ems.message() == line
    row = page.locator("#forecast tr[data-sku='EMS']")
    assert await row.locator("[data-field='free']").inner_text() == str(EMS_FREE)
    assert await row.locator("[data-field='scheduled']").inner_text() == str(FUTURE_HIRES)


async def _check_health(page: Page, world: World) -> None:
    """Queue depths as the queue service counts them, the poison one marked; the subscription and seat age in words."""
    shown = {r["data"]["queue"]: r for r in await _rows(page, "#queues tbody tr")}
    for name, row in shown.items():
        properties = await world.services.storage.queue(name).get_queue_properties()
        assert int(row["cells"]["messages"]) == properties.approximate_message_count
    assert shown[POISON_QUEUE]["cells"]["state"] == "Poisoned: 1 to look at"
    assert await page.locator(f"#queues tr[data-queue='{POISON_QUEUE}'].alarm").count() == 1
    assert await page.locator("#queues tr.alarm").count() == 1
    subscription = page.locator("[data-field='subscription']")
    assert await subscription.get_attribute("data-state") == "ok"
    assert (await subscription.inner_text()).startswith("expires in 28 days")
    age = page.locator("#seats-age")
    assert int(await age.get_attribute("data-seconds") or "-1") in range(60)
    assert (await age.inner_text()).endswith(" s ago")  # never "now": the catalog was read a moment before


async def _check_json_health(data: dict[str, Any], world: World) -> None:
    """The JSON health block: the subscription's expiry as Graph holds it, four queues, the seat data's age."""
    [subscription] = world.tenant.state.subscriptions.values()
    recorded = datetime.fromisoformat(data["health"]["subscription"]["expiresAt"])
    assert abs(recorded - subscription.expiration) < timedelta(seconds=1)
    assert {q["queue"]: q["poison"] for q in data["health"]["queues"]} == {
        LICENSE_REQUESTS_QUEUE: False,
        POISON_QUEUE: True,
        "license-verify": False,
        "license-verify-poison": True,
    }
    assert 0 <= data["health"]["seatsAgeSeconds"] < 60
    ems = next(s for s in data["forecast"]["skus"] if s["sku"] == "EMS")
    assert (ems["free"], ems["scheduled"], len(ems["byDate"])) == (EMS_FREE, FUTURE_HIRES, FUTURE_HIRES)
    assert [s["outcome"] for s in data["sweeps"]] == ["completed", "failed"]
    assert data["sweeps"][1]["failure"] == world.failed_run.failure


async def _check_markup(page: Page, shown: dict[str, Any]) -> None:
    """Hostile data is inert text; the document is navigable: lang, title, captions, scoped headers, meter names."""
    assert await page.locator("script, img, iframe").count() == 0
    hostile = page.locator("#failures [data-field='user']", has_text=HOSTILE_UPN)
    assert await hostile.count() == 1
    assert await page.locator("#failures [data-field='reason']", has_text=HOSTILE_BODY).count() == 1
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.title() == "Licensing status"
    assert await page.locator("h1").count() == 1
    assert await page.locator("table").count() == 7
    assert await page.locator("table:not(:has(> caption))").count() == 0
    assert await page.locator("th:not([scope])").count() == 0
    for sku, seats in shown["seats"].items():
        name = f"{sku}: {seats['consumed']} of {seats['enabled']} seats consumed"
        meter = page.get_by_role("meter", name=name, exact=True)
        assert await meter.count() == 1, name
        assert await meter.get_attribute("value") == str(seats["consumed"])


@pytest.fixture
async def http(services: Services) -> AsyncIterator[LocalHttp]:
    """The registered HTTP functions on loopback, over empty tables."""
    async with LocalHttp(function_app.app) as running:
        yield running


async def test_unknown_format_is_refused_with_the_allowed_values(http: LocalHttp) -> None:
    """?format=xml -> 400 with one line naming html and json; POST -> 405 (GET only)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(status_url(http, "format=xml")) as response:
            assert response.status == 400
            assert await response.json() == {"error": "unknown format 'xml'; use one of: html, json"}
        async with session.post(status_url(http)) as response:
            assert response.status == 405


async def test_empty_tables_give_an_empty_but_valid_snapshot(http: LocalHttp, tenant: EmulatedTenant) -> None:
    """Before anything happened: every outcome 0, no sweep, no failures, seats straight from the tenant."""
    async with aiohttp.ClientSession() as session, session.get(status_url(http, "format=json")) as response:
        data = await response.json()
    assert set(data["outcomes"].values()) == {0}
    assert (data["lastSweep"], data["sweeps"], data["recentFailures"]) == (None, [], [])
    assert len(data["history"]) == 30
    assert {q["queue"]: q["messages"] for q in data["health"]["queues"]} == dict.fromkeys(QUEUES, 0)
    assert data["health"]["subscription"]["state"] == "not-configured"  # no GRAPH_NOTIFICATION_URL here
    assert {s["scheduled"] for s in data["forecast"]["skus"]} == {0}
    assert {s["sku"]: s["enabled"] for s in data["seats"]} == {
        s.part_number: s.enabled for s in tenant.state.skus.values()
    }


async def test_storage_or_graph_trouble_is_a_503_with_retry_after(
    http: LocalHttp, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TransientError while reading -> 503 and Retry-After, like the other HTTP functions."""

    async def unavailable(*, fresh: bool = False) -> Catalog:
        raise TransientError("Graph is throttling subscribedSkus")

    monkeypatch.setattr(services.graph, "catalog", unavailable)
    async with aiohttp.ClientSession() as session, session.get(status_url(http)) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "10"


async def test_the_snapshot_never_scans_the_status_table(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts and failures come from the counters: no scan of LicenseStatus, and a failure fixed since drops out."""
    from licensing.services.overview import take_snapshot  # noqa: PLC0415  # the service under test, not the page

    for name in ("fixed", "still"):
        await services.storage.put_status(
            StatusRecord(f"u-{name}", "EMS", f"{name}@contoso.onmicrosoft.com", "failed", f"why {name}", "r", "hr")
        )
    await services.storage.put_status(
        StatusRecord("u-fixed", "EMS", "fixed@contoso.onmicrosoft.com", "verified", "ok now", "r2", "hr")
    )

    def no_scan(*args: Any, **kwargs: Any) -> AsyncIterator[StatusRecord]:
        raise AssertionError("the status page scanned LicenseStatus")

    monkeypatch.setattr(services.storage, "statuses", no_scan)
    snapshot = await take_snapshot(services)
    assert [(f.user_principal_name, f.reason) for f in snapshot.failures] == [
        ("still@contoso.onmicrosoft.com", "why still")
    ]
    assert (dict(snapshot.outcomes)["failed"], dict(snapshot.outcomes)["verified"]) == (1, 1)


async def test_the_snapshot_says_whether_the_totals_were_recounted(services: Services) -> None:
    """Empty and never recounted: no warning; rows and no recount: the warning; after a recount: its time."""
    from licensing.services.overview import take_snapshot  # noqa: PLC0415  # the service under test, not the page

    empty = await take_snapshot(services)
    assert (empty.recounted_at, empty.rows_uncounted, empty.totals_warning) == (None, False, "")
    tombstone = StatusRecord("u-left", LEAVER, "left@contoso.onmicrosoft.com", "removed", "left", "r", "hr")
    await services.storage.put_status(tombstone)  # rows the counters do not count: only a row read finds them
    assert (await take_snapshot(services)).totals_warning.startswith("totals not recounted yet")
    await counters.reconcile(services.storage, at=datetime(2026, 12, 1, 23, 55, tzinfo=UTC))
    recounted = await take_snapshot(services)
    assert (recounted.recounted_at, recounted.totals_warning) == (datetime(2026, 12, 1, 23, 55, tzinfo=UTC), "")


async def test_the_page_follows_the_subscription_as_the_timer_creates_and_renews_it(
    http: LocalHttp, services: Services, tenant: EmulatedTenant
) -> None:
    """No record: 'none'; then Graph's expiry as created, then as renewed near expiry; past it: 'expired'."""
    from licensing.services.subscriptions import LIFETIME, keep_alive  # noqa: PLC0415  # the timer's use case

    services.settings = replace(
        services.settings, graph_notification_url=f"{http.base_url}/graph/notifications?code=function-key"
    )

    async def subscription() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(status_url(http, "format=json")) as response:
            found: dict[str, Any] = (await response.json())["health"]["subscription"]
            return found

    assert (await subscription())["state"] == "none"
    now = datetime.now(UTC)
    assert await keep_alive(services, now=now) == "created"
    [created] = tenant.state.subscriptions.values()
    first = await subscription()
    assert (first["state"], datetime.fromisoformat(first["expiresAt"])) == ("ok", created.expiration)
    created_until = created.expiration
    later = LIFETIME - timedelta(days=2)  # both clocks move: ours and the tenant's
    tenant.state.clock = lambda: time.time() + later.total_seconds()
    assert await keep_alive(services, now=now + later) == "renewed"
    renewed = datetime.fromisoformat((await subscription())["expiresAt"])
    assert renewed == tenant.state.subscriptions[created.id].expiration
    assert renewed > created_until
    services.clock = lambda: renewed + timedelta(hours=1)
    gone = await subscription()
    assert (gone["state"], gone["text"]) == ("expired", "expired 1 hour ago")
