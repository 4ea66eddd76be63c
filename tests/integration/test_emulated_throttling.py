"""The emulated tenant's identity write budget (Graph's 429 with Retry-After) and its slow answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from licensing.dev.tenant import EmulatedTenant, Faults, Strictness, TenantState
from licensing.dev.tenant.__main__ import faults_from, parse_args
from tests.integration.support import FakeClock

EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
INTUNE_A = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"
DOMAIN = "contoso.onmicrosoft.com"
AISHA = f"aisha.khan@{DOMAIN}"  # usageLocation US, no licenses
LIAM = f"liam.obrien@{DOMAIN}"  # no usageLocation
GRACE = f"grace.thompson@{DOMAIN}"  # usageLocation GB, no licenses
ASSIGN = "POST /users/{id}/assignLicense"
PATCH = "PATCH /users/{id}"


@pytest.fixture
async def tenant(clock: FakeClock) -> AsyncIterator[EmulatedTenant]:
    # The lenient profile, whatever STRICT_BY_DEFAULT says: the strict one is test_emulated_strict.py's.
    state = TenantState.default(clock=clock, provisioning_delay=0, strictness=Strictness.lenient())
    async with EmulatedTenant(state, Faults(seed=7)) as running:
        yield running


def assign_ems(disabled: list[str] | None = None) -> dict[str, object]:
    return {"addLicenses": [{"skuId": EMS, "disabledPlans": disabled or []}], "removeLicenses": []}


def sub(n: str, method: str, url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    item: dict[str, object] = {"id": n, "method": method, "url": url}
    return item | ({"headers": {"Content-Type": "application/json"}, "body": body} if body else {})


# --- write budget -------------------------------------------------------------------------------------


async def test_write_beyond_budget_is_429_with_window_retry_after_and_not_applied(
    http: httpx.AsyncClient, tenant: EmulatedTenant, clock: FakeClock
) -> None:
    """Past the budget a write gets Graph's TooManyRequests, Retry-After until the oldest write expires, no effect."""
    tenant.faults.write_budget, tenant.faults.write_window = 2, 150
    assert (await http.post(f"/users/{AISHA}/assignLicense", json=assign_ems())).status_code == 200
    clock.advance(10)
    assert (await http.patch(f"/users/{LIAM}", json={"usageLocation": "IE"})).status_code == 204
    clock.advance(5)
    refused = await http.post(f"/users/{GRACE}/assignLicense", json=assign_ems())
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "135")  # 150 - 15
    error = refused.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["message"] == (
        f"Too many requests from Identifier:{tenant.state.tenant_id} under category:throttle.aad.ags. "
        "Please try again later."
    )
    assert not tenant.state.user(GRACE).holds(EMS)
    assert tenant.state.writes == {"assignLicense": 1, "updateUser": 1}
    assert (tenant.state.throttled_writes, tenant.state.faulted[ASSIGN], len(tenant.state.write_log)) == (1, 1, 2)


async def test_writes_succeed_again_once_the_window_passes(
    http: httpx.AsyncClient, tenant: EmulatedTenant, clock: FakeClock
) -> None:
    """When the oldest write leaves the window one more write is admitted; the next waits for the following one."""
    tenant.faults.write_budget, tenant.faults.write_window = 2, 60
    await http.patch(f"/users/{LIAM}", json={"usageLocation": "IE"})
    clock.advance(20)
    await http.patch(f"/users/{LIAM}", json={"usageLocation": "FR"})
    clock.advance(39.5)
    refused = await http.patch(f"/users/{LIAM}", json={"usageLocation": "DE"})
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "1")  # 0.5 s rounds up to a whole 1
    clock.advance(0.5)
    assert (await http.patch(f"/users/{LIAM}", json={"usageLocation": "DE"})).status_code == 204
    assert tenant.state.user(LIAM).usage_location == "DE"
    again = await http.patch(f"/users/{LIAM}", json={"usageLocation": "GB"})
    assert (again.status_code, again.headers["Retry-After"]) == (429, "20")  # the second write expires at +80
    assert (tenant.state.writes["updateUser"], tenant.state.throttled_writes) == (3, 2)


async def test_patch_counts_as_a_write_and_get_does_not(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """Reads pass freely under an exhausted budget; PATCH /users/{id} spends it like assignLicense."""
    tenant.faults.write_budget = 1
    for _ in range(5):
        assert (await http.get(f"/users/{LIAM}")).status_code == 200
    assert (await http.patch(f"/users/{LIAM}", json={"usageLocation": "IE"})).status_code == 204
    assert (await http.patch(f"/users/{LIAM}", json={"usageLocation": "FR"})).status_code == 429
    assert (await http.post(f"/users/{AISHA}/assignLicense", json=assign_ems())).status_code == 429
    assert (await http.get(f"/users/{LIAM}/licenseDetails")).status_code == 200
    assert tenant.state.user(LIAM).usage_location == "IE"
    assert (tenant.state.faulted[PATCH], tenant.state.faulted[ASSIGN], tenant.state.faulted["GET /users/{id}"]) == (
        1,
        1,
        0,
    )


async def test_writes_inside_batch_count_against_the_budget(
    http: httpx.AsyncClient, tenant: EmulatedTenant, clock: FakeClock
) -> None:
    """Each write sub-request of a $batch spends the budget; the one beyond it is 429 with Retry-After in the batch."""
    tenant.faults.write_budget, tenant.faults.write_window = 2, 150
    requests = [
        sub("1", "PATCH", f"/users/{LIAM}", {"usageLocation": "IE"}),
        sub("2", "GET", f"/users/{LIAM}"),
        sub("3", "POST", f"/users/{LIAM}/assignLicense", assign_ems()),
        sub("4", "POST", f"/users/{AISHA}/assignLicense", assign_ems()),
    ]
    response = await http.post("/$batch", json={"requests": requests})
    assert response.status_code == 200
    answers = response.json()["responses"]
    assert [a["status"] for a in answers] == [204, 200, 200, 429]
    assert (answers[3]["headers"]["Retry-After"], answers[3]["body"]["error"]["code"]) == ("150", "TooManyRequests")
    assert tenant.state.user(LIAM).holds(EMS)
    assert not tenant.state.user(AISHA).holds(EMS)
    clock.advance(1)
    plain = await http.patch(f"/users/{GRACE}", json={"usageLocation": "IE"})
    assert (plain.status_code, plain.headers["Retry-After"]) == (429, "149")
    assert tenant.state.throttled_writes == 2


async def test_unlimited_budget_never_throttles_writes(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """write_budget 0 (the default) admits every write and keeps no window."""
    for country in ("IE", "FR", "DE", "GB", "US"):
        assert (await http.patch(f"/users/{LIAM}", json={"usageLocation": country})).status_code == 204
    assert (tenant.state.throttled_writes, len(tenant.state.write_log)) == (0, 0)


# --- slow answers -------------------------------------------------------------------------------------


async def test_slow_answer_applies_the_write_before_the_client_gives_up(tenant: EmulatedTenant) -> None:
    """A slow answer is held back after its effect: a client that times out still finds its license assigned."""
    tenant.faults.slow_rate, tenant.faults.slow_ms = 1.0, 400
    async with httpx.AsyncClient(base_url=tenant.base_url, timeout=0.1) as impatient:
        started = time.perf_counter()
        with pytest.raises(httpx.TimeoutException):
            await impatient.post(f"/users/{AISHA}/assignLicense", json=assign_ems([INTUNE_A]))
        assert time.perf_counter() - started < 0.4  # gave up while the answer was still held back
    assert tenant.state.user(AISHA).holds(EMS)  # applied already, before the answer was sent
    assert (tenant.state.writes["assignLicense"], tenant.state.slow_answers) == (1, 1)


async def test_slow_answer_arrives_after_slow_ms(http: httpx.AsyncClient, tenant: EmulatedTenant) -> None:
    """A patient client gets the answer, slow_ms late; slow_rate 0 answers at once."""
    tenant.faults.slow_rate, tenant.faults.slow_ms = 1.0, 150
    started = time.perf_counter()
    assert (await http.get("/subscribedSkus")).status_code == 200
    assert time.perf_counter() - started >= 0.15
    tenant.faults.slow_rate = 0.0
    assert (await http.get("/subscribedSkus")).status_code == 200
    assert tenant.state.slow_answers == 1


def test_slow_draws_are_seeded_and_leave_throttle_draws_unchanged() -> None:
    """The same seed slows the same requests, and drawing slowness does not shift which requests are throttled."""

    def run(seed: int, slow: bool) -> tuple[list[bool], list[bool]]:
        faults = Faults(throttle_rate=0.3, slow_rate=0.5, slow_ms=10, seed=seed)
        slowed = [faults.draw_slow() > 0 for _ in range(100)] if slow else []
        return [faults.draw() is not None for _ in range(100)], slowed

    assert run(42, slow=True) == run(42, slow=True)
    assert run(42, slow=True)[1] != run(43, slow=True)[1]
    assert run(42, slow=True)[0] == run(42, slow=False)[0]
    assert 30 < sum(run(42, slow=True)[1]) < 70


# --- configuration ------------------------------------------------------------------------------------


async def test_faults_endpoint_accepts_write_budget_and_slow_settings(tenant: EmulatedTenant) -> None:
    """POST /_emulator/faults sets write_budget, write_window, slow_rate and slow_ms and refuses bad values."""
    settings = {"write_budget": 3, "write_window": 60, "slow_rate": 0.25, "slow_ms": 1500}
    async with httpx.AsyncClient(base_url=tenant.root_url) as admin:
        answer = await admin.post("/_emulator/faults", json=settings)
        assert answer.status_code == 200
        assert {k: answer.json()[k] for k in settings} == settings
        assert (tenant.faults.write_budget, tenant.faults.write_window) == (3, 60.0)
        assert (tenant.faults.slow_rate, tenant.faults.slow_ms) == (0.25, 1500.0)
        bad_settings = [{"write_budget": 1.5}, {"write_budget": -1}, {"write_window": 0}, {"slow_rate": 2}]
        for bad in [*bad_settings, {"slow_ms": -1}]:
            assert (await admin.post("/_emulator/faults", json=bad)).status_code == 400, bad
        stats = (await admin.get("/_emulator/stats")).json()
        assert (stats["throttledWrites"], stats["slowAnswers"], stats["faults"]["write_budget"]) == (0, 0, 3)


def test_command_line_flags_set_write_budget_and_slow_answers() -> None:
    """--write-budget, --write-window, --slow-rate and --slow-ms reach the Faults; the older flags still work."""
    new_flags = ["--write-budget", "30", "--write-window", "60", "--slow-rate", "0.1", "--slow-ms", "5000"]
    args = parse_args([*new_flags, "--throttle-rate", "0.2", "--retry-after", "3", "--latency-ms", "5", "--seed", "9"])
    faults = faults_from(args)
    assert (faults.write_budget, faults.write_window, faults.slow_rate, faults.slow_ms) == (30, 60.0, 0.1, 5000.0)
    assert (faults.throttle_rate, faults.retry_after, faults.latency_ms, faults.seed) == (0.2, 3, 5.0, 9)
    defaults = faults_from(parse_args([]))
    assert (defaults.write_budget, defaults.write_window, defaults.slow_rate, defaults.slow_ms) == (0, 150.0, 0.0, 0.0)
    for bad in (["--write-budget", "-1"], ["--write-window", "0"], ["--slow-rate", "1.5"], ["--slow-ms", "-2"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


async def test_throttled_write_is_answered_even_while_answers_are_slow(
    http: httpx.AsyncClient, tenant: EmulatedTenant
) -> None:
    """Budget and slowness combine: a refused write stays unapplied even though its 429 comes late."""
    tenant.faults.write_budget, tenant.faults.slow_rate, tenant.faults.slow_ms = 1, 1.0, 50
    first, second = await asyncio.gather(
        http.patch(f"/users/{LIAM}", json={"usageLocation": "IE"}),
        http.patch(f"/users/{GRACE}", json={"usageLocation": "IE"}),
    )
    assert sorted([first.status_code, second.status_code]) == [204, 429]
    assert [tenant.state.user(u).usage_location for u in (LIAM, GRACE)].count("IE") == 1
    assert tenant.state.slow_answers == 2
