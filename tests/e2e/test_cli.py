"""The admin CLI as an admin runs it: a real process against the emulated tenant."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from licensing.adapters.storage.account import Storage
from licensing.cli.main import main
from licensing.core.records import UNIDENTIFIED, StatusRecord
from licensing.dev.azurite import Azurite, free_port
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.strict import Strictness
from licensing.settings import Settings
from tests.conftest import REPO, wipe_storage
from tests.helpers import ASSIGN, EMS, INTUNE_A, RMS_S_PREMIUM, hire

EMSPREMIUM = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"
GROUP = "2c9e4b71-6d3a-4f08-b5e1-9a7c3d2e1f60"


def cli_env(tenant: EmulatedTenant) -> dict[str, str]:
    """Settings an admin would export to point the CLI at this tenant."""
    return {
        "LICENSING_GRAPH_URL": tenant.base_url,
        "LICENSING_GRAPH_AUTH": "none",
        "LICENSING_GRAPH_RETRY_DELAY_SECONDS": "0",
        "LICENSING_POLICY_PATH": str(REPO / "licensing-policy.json"),
    }


@pytest.fixture
def cli(
    tenant: EmulatedTenant, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Awaitable[tuple[int, str, str]]]:
    """Run the CLI's main() in a worker thread (it owns its event loop) while this loop serves the tenant."""
    for key, value in cli_env(tenant).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


Cli = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
async def cli_storage(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Storage]:
    """Clean Azurite named by AzureWebJobsStorage for the CLI, and the app's Storage over it for the test."""
    await wipe_storage(azurite.connection_string)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    storage = Storage.from_settings(Settings.from_env().require_storage())
    await storage.ensure_created()
    yield storage
    await storage.close()


async def test_console_script_runs_as_a_process(tenant: EmulatedTenant) -> None:
    """`python -m licensing skus --json` in its own process lists the tenant's SKUs."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "licensing", "skus", "--json", env={**os.environ, **cli_env(tenant)}, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert {s["sku"] for s in json.loads(out)} >= {"EMS", "EMSPREMIUM", "INTUNE_EDU", "INTUNE_A_D"}


async def test_skus_json_lists_seats_like_get_msolaccountsku(tenant: EmulatedTenant, cli: Cli) -> None:
    """`skus --json` gives enabled / consumed / free per SKU, matching the tenant."""
    code, out, _ = await cli("skus", "--json", "--plans")
    assert code == 0
    skus = {s["sku"]: s for s in json.loads(out)}
    assert skus["EMS"]["free"] == tenant.state.free_units(EMS)
    assert skus["EMSPREMIUM"]["free"] == 0
    assert "INTUNE_A" in {p["plan"] for p in skus["EMS"]["servicePlans"]}


async def test_skus_table_is_human_readable(tenant: EmulatedTenant, cli: Cli) -> None:
    """Without --json a table names each SKU."""
    code, out, _ = await cli("skus")
    assert code == 0
    assert "EMSPREMIUM" in out
    assert "Subscribed SKUs" in out


async def test_assign_dry_run_prints_the_exact_graph_bodies_and_sends_nothing(tenant: EmulatedTenant, cli: Cli) -> None:
    """--dry-run shows PATCH usageLocation and assignLicense bodies; the tenant is untouched."""
    user = hire(tenant, "dry", location=None)
    code, out, _ = await cli("assign", user.user_principal_name, "--sku", "EMS", "--disable", "INTUNE_A",
        "--usage-location", "FR", "--dry-run", "--json",
    )  # fmt: skip
    assert code == 0
    [result] = json.loads(out)["results"]
    assert result["outcome"] == "would be assigned"
    assert result["requests"] == [
        {"method": "PATCH", "url": f"/users/{user.id}", "body": {"usageLocation": "FR"}},
        {"method": "POST", "url": f"/users/{user.id}/assignLicense",
         "body": {"addLicenses": [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], "removeLicenses": []}},
    ]  # fmt: skip
    assert tenant.state.requests[ASSIGN] == 0
    assert user.usage_location is None


async def test_assign_names_the_whole_disabled_set_like_license_options(tenant: EmulatedTenant, cli: Cli) -> None:
    """Assigning again with other --disable plans replaces the set, as -LicenseOptions did."""
    user = hire(tenant, "opts")
    assert (await cli("assign", user.user_principal_name, "--sku", "EMS", "--disable", "INTUNE_A"))[0] == 0
    code, out, _ = await cli("assign", user.user_principal_name, "--sku", "EMS", "--disable", "RMS_S_PREMIUM")
    assert code == 0
    assert "changed" in out
    [held] = user.assignments
    assert held.disabled_plans == [RMS_S_PREMIUM]


async def test_verify_exits_zero_when_every_plan_matches_the_policy(tenant: EmulatedTenant, cli: Cli) -> None:
    """ServiceStatus as expected (INTUNE_A Disabled, rest Success) -> exit 0 and a table."""
    user = hire(tenant, "good")
    await cli("assign", user.user_principal_name, "--sku", "EMS", "--disable", "INTUNE_A")
    code, out, _ = await cli("verify", user.user_principal_name)
    assert code == 0, out
    assert "INTUNE_A" in out
    assert "Disabled" in out


async def test_verify_exits_one_when_a_plan_is_not_as_expected(tenant: EmulatedTenant, cli: Cli) -> None:
    """INTUNE_A enabled although the policy disables it -> exit 1, reason in JSON."""
    user = hire(tenant, "drift")
    await cli("assign", user.user_principal_name, "--sku", "EMS")
    code, out, _ = await cli("verify", user.user_principal_name, "--json")
    assert code == 1
    [result] = json.loads(out)
    [lic] = result["licenses"]
    assert lic["outcome"] == "failed"
    assert "INTUNE_A is Success (expected Disabled)" in lic["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assign", "nobody@contoso.onmicrosoft.com", "--sku", "EMS"], "Request_ResourceNotFound"),
        (["assign", "{upn}", "--sku", "SPE_E5"], "the tenant has: EMS, EMSPREMIUM"),
        (["assign", "{upn}", "--sku", "EMS", "--disable", "INTUNE_B"], "EMS has: AAD_PREMIUM"),
        (["assign", "{upn}", "--sku", "EMSPREMIUM"], "no free seats for EMSPREMIUM"),
    ],
    ids=["unknown-user", "unknown-sku", "unknown-plan", "no-seats"],
)
async def test_expected_failures_print_one_line_and_exit_3(
    tenant: EmulatedTenant, cli: Cli, args: list[str], message: str
) -> None:
    """No traceback: one line naming the problem, exit code 3."""
    user = hire(tenant, "fails")
    code, _out, err = await cli(*[a.format(upn=user.user_principal_name) for a in args])
    assert code == 3
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_verify_of_an_unlicensed_user_shows_what_is_missing(tenant: EmulatedTenant, cli: Cli) -> None:
    """An executive whose SKU had no seat: exit 1 with the missing license named, not an error."""
    user = hire(tenant, "exec", department="Executive")
    code, out, _ = await cli("verify", user.user_principal_name, "--json")
    assert code == 1
    [result] = json.loads(out)
    [lic] = result["licenses"]
    assert (lic["sku"], lic["outcome"]) == ("EMSPREMIUM", "not-assigned")
    assert "not assigned" in lic["reason"]


async def test_missing_credentials_print_one_line_not_a_traceback(
    tenant: EmulatedTenant, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LICENSING_GRAPH_AUTH=default with nobody signed in: one line saying to sign in, exit 3."""
    # The tenant's loopback URL: should a token ever come back, nothing leaves this machine.
    monkeypatch.setenv("LICENSING_GRAPH_AUTH", "default")
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_USERNAME",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
        "AZURE_FEDERATED_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no az, azd or pwsh to borrow a login from
    # Point the managed-identity probe at a closed loopback port: it must never reach the real IMDS address.
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{free_port()}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "not-a-secret")
    code, _, err = await cli("skus")
    assert code == 3
    assert "could not get a Graph token" in err
    assert "Traceback" not in err


async def test_sweep_dry_run_prints_json_and_writes_the_csv(
    tenant: EmulatedTenant, cli: Cli, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`licensing sweep --dry-run --json --out FILE`: a summary with drift by kind, a CSV, nothing written to Graph."""
    await wipe_storage(azurite.connection_string)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("SWEEP_MODE", "remediate")  # --dry-run wins
    report = tmp_path / "drift.csv"
    code, out, _ = await cli("sweep", "--dry-run", "--json", "--out", str(report))
    assert code == 0
    summary = json.loads(out)
    assert (summary["mode"], summary["read"], summary["usersSeen"]) == ("report", "full", len(tenant.state.users))
    assert summary["fixesEnqueued"] == 0
    assert summary["drift"]["missing-license"] + summary["drift"]["usage-location-missing"] >= 20  # new hires
    lines = report.read_text().splitlines()
    assert lines[0].startswith("run_id,user_id,user_principal_name,kinds")
    assert len(lines) == summary["usersDrifted"] + 1
    assert tenant.state.requests[ASSIGN] == 0


async def test_sweep_table_output_for_people(
    tenant: EmulatedTenant, cli: Cli, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --json a table lists drift by kind."""
    await wipe_storage(azurite.connection_string)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    code, out, _ = await cli("sweep", "--dry-run")
    assert code == 0
    assert "users scanned" in out
    assert "missing-license" in out


async def test_status_and_requeue_send_failed_users_back(
    tenant: EmulatedTenant, cli: Cli, cli_storage: Storage
) -> None:
    """`status --outcome failed` lists the failures; `requeue` puts each failed user back on the queue once."""
    storage = cli_storage
    for user, outcome in (
        ("u-failed", "failed"),
        ("u-failed", "failed"),
        ("u-ok", "verified"),
        ("u-blocked", "blocked"),
    ):
        await storage.put_status(StatusRecord(user, "EMS" if user != "u-failed" else f"EMS{outcome}", user, outcome,  # type: ignore[arg-type]
                                              f"why {outcome}", "r", "hr"))  # fmt: skip
    code, out, _ = await cli("status", "--outcome", "failed", "--since", "1d", "--json")
    assert code == 0
    assert [row["user"] for row in json.loads(out)] == ["u-failed"]
    # a poisoned message that named no user: recorded, but a second try could not succeed
    await storage.put_status(StatusRecord(UNIDENTIFIED, "message-m1", "", "failed", "not JSON", "r", "hr"))
    code, out, _ = await cli("requeue", "--outcome", "failed", "--json")
    assert (code, [u["userId"] for u in json.loads(out)["requeued"]]) == (0, ["u-failed"])
    messages = [json.loads(m.content) async for m in storage.queue("license-requests").receive_messages()]
    assert [(m["user"], m["source"]) for m in messages] == [("u-failed", "manual")]
    code, _, err = await cli("status", "--since", "soon")
    assert code == 2
    assert "use a number and d, h or m" in err


async def test_requeue_sends_a_blocked_user_back_with_the_request_that_was_blocked(
    tenant: EmulatedTenant, cli: Cli, cli_storage: Storage
) -> None:
    """A blocked row keeps its HR request: `requeue --outcome blocked` sends that (attributes too), not a bare user."""
    upn = "exec@contoso.onmicrosoft.com"
    kept = {
        "user": upn,
        "source": "hr",
        "requestId": "hr-e1",
        "attempt": 2,
        "attributes": {"department": "Executive"},
        "usageLocation": "FR",
        "issuedAt": "2026-01-05T09:00:00+00:00",
    }
    row = StatusRecord("u-exec", "EMSPREMIUM", upn, "blocked", "no seats", "hr-e1", "hr", request=json.dumps(kept))
    await cli_storage.put_status(row)
    code, out, _ = await cli("requeue", "--outcome", "blocked", "--json")
    assert (code, [u["userId"] for u in json.loads(out)["requeued"]]) == (0, ["u-exec"])
    [message] = [json.loads(m.content) async for m in cli_storage.queue("license-requests").receive_messages()]
    assert message["requestId"].startswith("hr-e1+requeue-")
    assert {k: message[k] for k in ("user", "source", "attributes", "usageLocation", "issuedAt", "attempt")} == {
        **{k: kept[k] for k in ("user", "source", "attributes", "usageLocation", "issuedAt")},
        "attempt": 0,
    }


async def test_verify_reports_an_admin_pending_plan_as_action_required_and_exits_one(
    tenant: EmulatedTenant, cli: Cli
) -> None:
    """App-only, a service waiting for activation: action-required with the fix and the plan-state source, exit 1."""
    tenant.state.strictness = Strictness()
    user = hire(tenant, "waiting")
    await cli("assign", user.user_principal_name, "--sku", "EMS", "--disable", "INTUNE_A")
    tenant.state.require_activation("AAD_PREMIUM")
    code, out, _ = await cli("verify", user.user_principal_name, "--json")
    assert code == 1
    [lic] = json.loads(out)[0]["licenses"]
    assert (lic["outcome"], lic["planSource"]) == ("action-required", "assignedPlans+provisionedPlans")
    fix = "an admin must activate the service in the Microsoft 365 admin center, then run `licensing verify"
    assert f"{fix} {user.user_principal_name}`" in lic["reason"]
    code, out, _ = await cli("verify", user.user_principal_name)
    assert code == 1
    assert "action-required" in out
    assert "PendingActivation" in out


async def test_verify_names_a_group_license_in_error(tenant: EmulatedTenant, cli: Cli) -> None:
    """EMS only through a group in error: not "held via a group" but action-required with the error code, exit 1."""
    tenant.state.strictness = Strictness()
    user = hire(tenant, "badgroup")
    tenant.state.add_group_license(user.id, "EMS", GROUP, state="Error", error="CountViolation")
    code, out, _ = await cli("verify", user.user_principal_name, "--json")
    assert code == 1
    [lic] = json.loads(out)[0]["licenses"]
    assert lic["outcome"] == "action-required"
    assert lic["reason"].startswith(f"EMS via group {GROUP} is in error (CountViolation")


async def test_skus_count_grace_period_seats_as_free(tenant: EmulatedTenant, cli: Cli) -> None:
    """prepaidUnits.warning seats are shown (warning / grace) and counted in free, as Graph lets them be assigned."""
    tenant.state.strictness = Strictness()
    tenant.state.skus[EMSPREMIUM].warning = 3
    code, out, _ = await cli("skus", "--json")
    premium = {s["sku"]: s for s in json.loads(out)}["EMSPREMIUM"]
    assert (code, premium["warning"], premium["free"]) == (0, 3, 3)
    assert premium["free"] == tenant.state.free_units(EMSPREMIUM)
    _, out, _ = await cli("skus", "--csv")
    assert "warning" in out.splitlines()[0].split(",")


async def test_status_and_requeue_take_action_required_rows(
    tenant: EmulatedTenant, cli: Cli, cli_storage: Storage
) -> None:
    """`status --outcome action-required` lists them; `requeue --outcome action-required` sends each user back."""
    await cli_storage.put_status(StatusRecord("u-admin", "EMS", "u-admin", "action-required", "activate", "r", "hr"))
    await cli_storage.put_status(StatusRecord("u-ok", "EMS", "u-ok", "verified", "fine", "r", "hr"))
    code, out, _ = await cli("status", "--outcome", "action-required", "--json")
    assert (code, [row["user"] for row in json.loads(out)]) == (0, ["u-admin"])
    code, out, _ = await cli("requeue", "--outcome", "action-required", "--json")
    assert (code, [u["userId"] for u in json.loads(out)["requeued"]]) == (0, ["u-admin"])


async def test_assign_gives_the_sku_directly_when_only_a_group_in_error_holds_it(
    tenant: EmulatedTenant, cli: Cli
) -> None:
    """`assign` for a user whose EMS group is in error assigns EMS directly instead of saying "unchanged"."""
    tenant.state.strictness = Strictness()
    user = hire(tenant, "rescue")
    tenant.state.add_group_license(user.id, "EMS", GROUP, state="Error", error="MutuallyExclusiveViolation")
    code, out, _ = await cli("assign", user.user_principal_name, "--sku", "EMS", "--disable", "INTUNE_A", "--json")
    assert code == 0
    assert json.loads(out)["results"][0]["outcome"] == "assigned"
    assert [(a.sku_id, a.assigned_by_group) for a in tenant.state.user(user.id).assignments] == [(EMS, None)]


async def test_assign_waits_out_the_usage_location_replication_lag(tenant: EmulatedTenant, cli: Cli) -> None:
    """`assign --usage-location` right after setting it: Graph's brief "invalid usage location" is waited out."""
    tenant.state.strictness = Strictness()  # the location replicates 2 s after the PATCH
    user = hire(tenant, "fresh", location=None)
    code, out, err = await cli("assign", user.user_principal_name, "--sku", "EMS", "--usage-location", "US", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["results"][0]["outcome"] == "assigned"
    assert tenant.state.requests[ASSIGN] > 1  # refused at least once while replicating
    assert [a.sku_id for a in tenant.state.user(user.id).assignments] == [EMS]
