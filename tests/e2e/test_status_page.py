"""GET /api/status in real headless Chromium: the numbers read off the page match what the tenant and tables hold.

Real data: hires, a seat shortage, an unknown (hostile) user, an unreadable message and an HR leaver all go
through the queue functions registered in function_app.py; a real sweep runs in report mode. The page is
served by LocalHttp and opened with Playwright in Debian's chromium (never `playwright install`).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import BrowserContext, BrowserType, Dialog, Page, async_playwright

import function_app
from licensing import composition
from licensing.adapters.storage.sweep_store import drift_rows
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
from tests.helpers import EMS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
HOSTILE_UPN = "<img src=x onerror=alert(1)>@contoso.onmicrosoft.com"
HOSTILE_BODY = "<script>alert('status')</script>"
FAILURES = ("failed", "blocked", "rejected", "action-required")
SEAT_FIELDS = ("enabled", "consumed", "free", "warning", "suspended")
ADMIN_PENDING = "grace.thompson@contoso.onmicrosoft.com"  # one of her plans waits for an admin to activate it
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
    """Onboard, block, reject and offboard through the real functions, then sweep in report mode."""
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
        async with LocalHttp(function_app.app) as http:
            yield World(services, tenant, http, sweep)
    finally:
        await host.close()
        await composition.reset()


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
        seats[sku.part_number] = {"enabled": sku.enabled, "consumed": consumed, "free": free, "warning": sku.warning,
                                  "suspended": sku.suspended, "low": free < threshold}  # fmt: skip
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

    async def note(dialog: Dialog) -> None:  # an alert() would mean injected markup ran
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with async_playwright() as playwright:
        context = await launch(playwright.chromium, chromium, tmp_path / "profile", javascript=True)
        page = context.pages[0] if context.pages else await context.new_page()
        page.on("dialog", note)
        response = await page.goto(world.url())
        assert response is not None
        assert response.status == 200
        assert (await response.header_value("content-type") or "").startswith("text/html")
        shot = tmp_path / "status.png"
        await page.screenshot(path=shot, full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 20_000
        shown = await read_page(page)
        assert {**shown, "failures": sorted(shown["failures"])} == {k: want[k] for k in shown}
        times = [await t.get_attribute("datetime") or "" for t in await page.locator("#failures time").all()]
        assert times == sorted(times, reverse=True)  # newest first (ISO 8601 in UTC sorts as text)
        await _check_markup(page, shown)
        answer = await page.request.get(world.url("format=json"))
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("application/json")
        assert from_json(await answer.json()) == shown
        await context.close()
        no_js = await launch(playwright.chromium, chromium, tmp_path / "profile-nojs", javascript=False)
        plain = no_js.pages[0] if no_js.pages else await no_js.new_page()
        await plain.goto(world.url())
        assert await read_page(plain) == shown
        await no_js.close()
    assert dialogs == []  # nothing from the hostile UPN or message body ever ran


async def _check_markup(page: Page, shown: dict[str, Any]) -> None:
    """Hostile data is inert text; the document is navigable: lang, title, captions, scoped headers, meter names."""
    assert await page.locator("script, img, iframe").count() == 0
    hostile = page.locator("#failures [data-field='user']", has_text=HOSTILE_UPN)
    assert await hostile.count() == 1
    assert await page.locator("#failures [data-field='reason']", has_text=HOSTILE_BODY).count() == 1
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.title() == "Licensing status"
    assert await page.locator("h1").count() == 1
    assert await page.locator("table").count() == 4
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
    assert (data["lastSweep"], data["recentFailures"]) == (None, [])
    assert {s["sku"]: s["enabled"] for s in data["seats"]} == {s.part_number: s.enabled
                                                               for s in tenant.state.skus.values()}  # fmt: skip


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


async def test_failures_are_read_whole_and_one_fixed_since_the_scan_is_left_out(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan reads four columns; the newest failures are then read whole, and one verified meanwhile drops out."""
    from licensing.services.overview import OUTLINE, take_snapshot  # noqa: PLC0415  # the service under test, not the page

    for name in ("stale", "still"):
        await services.storage.put_status(StatusRecord(f"u-{name}", "EMS", f"{name}@contoso.onmicrosoft.com",
                                                       "failed", f"why {name}", "r", "hr"))  # fmt: skip
    scanned: list[tuple[str, ...] | None] = []
    real_statuses, real_status = services.storage.statuses, services.storage.status

    def statuses(*args: Any, select: tuple[str, ...] | None = None, **kwargs: Any) -> AsyncIterator[StatusRecord]:
        scanned.append(select)
        return real_statuses(*args, select=select, **kwargs)

    async def status(user_key: str, sku: str) -> StatusRecord | None:
        if user_key == "u-stale":  # fixed between the scan and this read
            await services.storage.put_status(StatusRecord(user_key, sku, "stale@contoso.onmicrosoft.com", "verified",
                                                           "ok now", "r2", "hr"))  # fmt: skip
        return await real_status(user_key, sku)

    monkeypatch.setattr(services.storage, "statuses", statuses)
    monkeypatch.setattr(services.storage, "status", status)
    snapshot = await take_snapshot(services)
    assert scanned == [OUTLINE]
    assert [(f.user_principal_name, f.reason) for f in snapshot.failures] == [
        ("still@contoso.onmicrosoft.com", "why still")
    ]
    assert dict(snapshot.outcomes)["failed"] == 2  # counted as the scan saw them
