"""The admin CLI's many-user commands, remove, CSV output and `policy check`, against the emulated tenant."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from licensing.adapters.storage.account import Storage
from licensing.cli import render as cli_render
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite, free_port
from licensing.dev.tenant import EmulatedTenant
from licensing.dev.tenant.model import Assignment, ServicePlan
from tests.conftest import REPO
from tests.e2e.test_cli import Cli, cli, cli_env, cli_storage
from tests.helpers import ASSIGN, EMS, INTUNE_A, RMS_S_PREMIUM, hire

__all__ = ["cli", "cli_storage"]  # fixtures shared with test_cli.py


def _csv(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


async def test_assign_many_users_from_args_and_a_file_each_once(
    tenant: EmulatedTenant, cli: Cli, tmp_path: Path
) -> None:
    """Users named on the command line and in users.csv (header, BOM, comment, duplicate) all get EMS once."""
    tenant.state.strictness.usage_location_lag = 0  # one assignLicense each; the lag has its own test (test_cli.py)
    users = [hire(tenant, f"bulk{i}", location=None) for i in range(5)]
    listing = tmp_path / "users.csv"
    rows = [f"{u.user_principal_name},{'FR' if i % 2 else ''}" for i, u in enumerate(users[2:], start=2)]
    listing.write_text("\ufeffuserPrincipalName,usageLocation\n# joiners this week\n" + "\n".join(rows)
                       + f"\n{users[0].user_principal_name.upper()},\n", encoding="utf-8")  # fmt: skip
    code, out, err = await cli("assign", users[0].user_principal_name, users[1].user_principal_name,
                               "--from-file", str(listing), "--sku", "EMS", "--disable", "INTUNE_A",
                               "--usage-location", "US", "--json")  # fmt: skip
    assert (code, err) == (0, "")
    results = json.loads(out)["results"]
    assert [r["user"] for r in results] == [u.user_principal_name for u in users]
    assert {r["outcome"] for r in results} == {"assigned"}
    assert tenant.state.requests[ASSIGN] == 5
    for u in users:
        [held] = u.assignments
        assert (held.sku_id, held.disabled_plans) == (EMS, [INTUNE_A])
    assert [u.usage_location for u in users] == ["US", "US", "US", "FR", "US"]  # the file's column wins


async def test_one_unknown_user_fails_alone_with_one_line_and_exit_3(tenant: EmulatedTenant, cli: Cli) -> None:
    """A missing user is one stderr line naming it; the others are still assigned; exit 3."""
    good = [hire(tenant, "fine1"), hire(tenant, "fine2")]
    code, out, err = await cli("assign", good[0].user_principal_name, "ghost@contoso.onmicrosoft.com",
                               good[1].user_principal_name, "--sku", "EMS", "--csv")  # fmt: skip
    assert code == 3
    assert err.strip().splitlines() == [err.strip()]  # one line
    assert err.startswith("licensing assign: ghost@contoso.onmicrosoft.com: ")
    assert "Request_ResourceNotFound" in err
    rows = _csv(out)
    assert [(r["user"], r["outcome"]) for r in rows] == [
        (good[0].user_principal_name, "assigned"), ("ghost@contoso.onmicrosoft.com", "failed"),
        (good[1].user_principal_name, "assigned"),
    ]  # fmt: skip
    assert all(u.assignments for u in good)


async def test_keep_disabled_adds_to_the_plans_already_disabled(tenant: EmulatedTenant, cli: Cli) -> None:
    """--keep-disabled: RMS_S_PREMIUM stays disabled next to INTUNE_A (dry run shows the body, then it is sent)."""
    user = hire(tenant, "keeper")
    tenant.state.assign_license(user.id, [{"skuId": EMS, "disabledPlans": [RMS_S_PREMIUM]}], [])
    args = ("assign", user.user_principal_name, "--sku", "EMS", "--disable", "INTUNE_A", "--keep-disabled")
    code, out, _ = await cli(*args, "--dry-run", "--json")
    [result] = json.loads(out)["results"]
    assert (code, result["outcome"]) == (0, "would be changed")
    assert result["requests"][0]["body"] == {
        "addLicenses": [{"skuId": EMS, "disabledPlans": sorted([INTUNE_A, RMS_S_PREMIUM])}],
        "removeLicenses": [],
    }
    assert tenant.state.requests[ASSIGN] == 0  # the setup wrote to the state directly
    code, out, _ = await cli(*args)
    assert code == 0
    [held] = user.assignments
    assert sorted(held.disabled_plans) == sorted([INTUNE_A, RMS_S_PREMIUM])
    code, out, _ = await cli(*args, "--json")
    assert json.loads(out)["results"][0]["outcome"] == "unchanged"


async def test_dry_run_for_many_warns_when_seats_run_out(tenant: EmulatedTenant, cli: Cli) -> None:
    """Three users wanting EMS with two free seats: the dry run says so and sends nothing."""
    users = [hire(tenant, f"short{i}") for i in range(3)]
    tenant.state.skus[EMS].enabled = tenant.state.consumed_units(EMS) + 2
    code, out, _ = await cli("assign", *[u.user_principal_name for u in users], "--sku", "EMS", "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["notes"] == ["3 users need a new EMS seat but only 2 are free"]
    assert tenant.state.requests[ASSIGN] == 0


async def test_users_file_problems_are_named_by_line_and_exit_2(
    tenant: EmulatedTenant, cli: Cli, tmp_path: Path
) -> None:
    """A bad usageLocation and an empty user cell: one line naming both line numbers, exit 2, nothing sent."""
    listing = tmp_path / "users.csv"
    listing.write_text("upn,usageLocation\na@contoso.onmicrosoft.com,USA\n,FR\n", encoding="utf-8")
    code, _, err = await cli("assign", "--from-file", str(listing), "--sku", "EMS")
    assert code == 2
    assert "line 2: usageLocation 'USA' is not a two-letter country code" in err
    assert "line 3: no user" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = await cli("assign", "--sku", "EMS")
    assert (code, err.strip()) == (
        2,
        "licensing assign: no users given: name them (USER …) or use --from-file users.csv",
    )
    assert tenant.state.requests[ASSIGN] == 0


async def test_remove_takes_the_direct_seat_and_never_a_group_license(tenant: EmulatedTenant, cli: Cli) -> None:
    """Direct EMS is removed; EMS only via a group is left and the output says so; nothing held is reported."""
    direct, grouped, neither = hire(tenant, "direct"), hire(tenant, "grouped"), hire(tenant, "neither")
    tenant.state.assign_license(direct.id, [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], [])
    grouped.assignments.append(Assignment(EMS, [], "group-1", time.time()))
    before = tenant.state.requests[ASSIGN]
    names = [u.user_principal_name for u in (direct, grouped, neither)]
    code, out, _ = await cli("remove", *names, "--sku", "EMS", "--dry-run", "--json")
    results = json.loads(out)["results"]
    assert code == 0
    assert [r["outcome"] for r in results] == ["would be removed", "group", "unchanged"]
    assert results[0]["requests"] == [{"method": "POST", "url": f"/users/{direct.id}/assignLicense",
                                       "body": {"addLicenses": [], "removeLicenses": [EMS]}}]  # fmt: skip
    assert "group-assigned licenses are never removed here" in results[1]["reason"]
    assert tenant.state.requests[ASSIGN] == before
    code, out, _ = await cli("remove", *names, "--sku", "EMS")
    assert code == 0
    assert "group-1" in out
    assert direct.assignments == []
    assert [(a.sku_id, a.assigned_by_group) for a in grouped.assignments] == [(EMS, "group-1")]
    assert tenant.state.requests[ASSIGN] == before + 1


async def test_verify_many_users_exits_1_and_csv_has_a_row_per_plan(tenant: EmulatedTenant, cli: Cli) -> None:
    """One user as the policy says, one with INTUNE_A enabled: exit 1, CSV rows per plan show which."""
    good, drifted = hire(tenant, "vgood"), hire(tenant, "vdrift")
    tenant.state.assign_license(good.id, [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], [])
    tenant.state.assign_license(drifted.id, [{"skuId": EMS, "disabledPlans": []}], [])
    code, out, _ = await cli("verify", good.user_principal_name, drifted.user_principal_name, "--csv")
    assert code == 1
    rows = _csv(out)
    intune = {r["user"]: (r["outcome"], r["status"], r["expected"]) for r in rows
              if r["plan"] == "INTUNE_A"}  # fmt: skip
    assert intune[drifted.user_principal_name] == ("failed", "Success", "Disabled")
    assert intune[good.user_principal_name][1:] == ("Disabled", "Disabled")
    assert len({r["plan"] for r in rows}) == len(tenant.state.skus[EMS].plans)


async def test_skus_csv_flags_low_seats_at_the_setting(
    tenant: EmulatedTenant, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`skus --csv` has the seat columns; LICENSING_LOW_SEAT_THRESHOLD decides which SKUs are LOW."""
    monkeypatch.setenv("LICENSING_LOW_SEAT_THRESHOLD", str(tenant.state.free_units(EMS) + 1))
    code, out, _ = await cli("skus", "--csv")
    rows = {r["sku"]: r for r in _csv(out)}
    assert code == 0
    assert int(rows["EMS"]["free"]) == tenant.state.free_units(EMS)
    assert rows["EMS"]["low"] == "true"
    assert {k for k, r in rows.items() if r["low"] == "true"} == {
        s.part_number
        for s in tenant.state.skus.values()
        if tenant.state.free_units(s.id) <= tenant.state.free_units(EMS)
    }
    monkeypatch.setenv("LICENSING_LOW_SEAT_THRESHOLD", str(tenant.state.free_units(EMS)))  # exactly that many free
    _, out, _ = await cli("skus", "--csv")
    assert {r["sku"]: r["low"] for r in _csv(out)}["EMS"] == "false"


async def test_policy_check_offline_and_against_the_tenant_with_what_if(tenant: EmulatedTenant, cli: Cli) -> None:
    """The shipped policy validates, resolves cleanly, and what-if shows the rule and action per sample user."""
    code, out, _ = await cli("policy", "check", "--json")
    data = json.loads(out)
    assert (code, data["valid"], data["checkedAgainstTenant"]) == (0, True, False)
    assert [r["rule"] for r in data["rules"]][:2] == ["executives", "teachers"]
    newbie, exec_ = hire(tenant, "whatif"), hire(tenant, "boss", department="Executive")
    code, out, _ = await cli("policy", "check", "--against-tenant", "--user", newbie.user_principal_name,
                             "--user", exec_.user_principal_name, "--json")  # fmt: skip
    data = json.loads(out)
    assert (code, data["errors"], data["unreviewedPlans"], data["warnings"]) == (0, [], [], [])
    assert [(w["rule"], w["action"]) for w in data["whatIf"]] == [("everyone", "assign"), ("executives", "blocked")]
    assert "assign EMS (disabled: INTUNE_A)" in data["whatIf"][0]["reason"]
    assert "no free seats for EMSPREMIUM" in data["whatIf"][1]["reason"]
    assert tenant.state.requests[ASSIGN] == 0
    code, out, _ = await cli("policy", "check", "--against-tenant", "--sample", "3", "--csv")
    assert code == 0
    assert len([r for r in _csv(out) if r["kind"] == "what-if"]) == 3


async def test_policy_check_names_plans_microsoft_added_to_a_sku(tenant: EmulatedTenant, cli: Cli) -> None:
    """A new plan in EMS that the policy never mentions: exit 1, naming the SKU, the plan and the rules using it."""
    tenant.state.skus[EMS].plans.append(ServicePlan("0a1b2c3d-0000-4000-8000-00000000c0de", "COPILOT_SECURITY"))
    code, out, _ = await cli("policy", "check", "--against-tenant", "--sample", "0", "--json")
    assert code == 1
    [new] = json.loads(out)["unreviewedPlans"]
    assert new == {"sku": "EMS", "plans": ["COPILOT_SECURITY"], "rules": ["contractors", "everyone"]}
    code, out, _ = await cli("policy", "check", "--against-tenant", "--sample", "0")
    assert "reviewedPlans.EMS" in out


async def test_policy_check_lists_every_unresolvable_name_and_exits_3(
    tenant: EmulatedTenant, cli: Cli, tmp_path: Path
) -> None:
    """An unknown SKU and an unknown plan in different rules are both reported, not only the first."""
    policy = json.loads((REPO / "licensing-policy.json").read_text())
    policy["rules"][0]["licenses"][0]["sku"] = "SPE_E5"
    policy["rules"][2]["licenses"][0]["disabledPlans"].append("INTUNE_B")
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    code, out, err = await cli("policy", "check", "--policy", str(path), "--against-tenant", "--json")
    errors = json.loads(out)["errors"]
    assert code == 3
    assert len(errors) == 2
    assert "'executives' names SKU 'SPE_E5'" in errors[0]
    assert "'contractors' disables plan 'INTUNE_B'" in errors[1]
    assert err.startswith("licensing policy check: policy.json: 2 name(s) do not resolve")
    path.write_text('{"rules": []}')
    code, _, err = await cli("policy", "check", "--policy", str(path))
    assert code == 3
    assert "policy file policy.json is invalid: rules: Tuple should have at least 1 item" in err


def _in_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run the CLI with stderr on a pseudo-terminal (as an admin's shell has it); stdout piped."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(  # our own CLI, fixed arguments
        [sys.executable, "-m", "licensing", *args], env={**os.environ, **env, "COLUMNS": "120"}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=secondary, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(primary)
    return proc.returncode, out, seen


async def test_progress_bar_shows_on_a_terminal(tenant: EmulatedTenant) -> None:
    """On a terminal, assigning several users draws a bar on stderr that reaches N/N; stdout stays the table."""
    users = [hire(tenant, f"bar{i}").user_principal_name for i in range(3)]
    args = ["assign", *users, "--sku", "EMS", "--parallel", "1"]
    code, out, terminal = await asyncio.to_thread(_in_a_terminal, args, cli_env(tenant))
    assert code == 0, terminal.decode(errors="replace")
    assert b"assign EMS" in terminal
    assert b"3/3" in terminal
    assert out.count(b"assigned") >= 3
    assert b"3/3" not in out
    assert tenant.state.requests[ASSIGN] == 3


async def test_data_that_looks_like_markup_is_printed_not_obeyed(
    cli: Cli, cli_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reason or user holding "[/b] [bold]" (it can come from a sender's message) prints as it is, no crash."""
    monkeypatch.setenv(
        "COLUMNS", "120"
    )  # room for the reason on one line: literal printing is under test, not wrapping
    row = StatusRecord("u-x", "-", "x@contoso.onmicrosoft.com", "rejected", "[/b] [bold]x", "r", "hr")
    await cli_storage.put_status(row)
    code, out, err = await cli("status")
    assert (code, err) == (0, "")
    assert "[/b] [bold]x" in out
    code, out, err = await cli("assign", "c[/]@contoso.onmicrosoft.com", "--sku", "EMS")
    assert code == 3
    assert "c[/]@" in out  # printed literally (the table may fold the rest onto the next line)
    assert len(err.strip().splitlines()) == 1


async def test_unreachable_storage_is_one_line_and_exit_3(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """`status` with storage down says which table it could not read, no traceback."""
    port = free_port()
    monkeypatch.setenv(
        "AzureWebJobsStorage", Azurite(table_port=port, queue_port=port, blob_port=port).connection_string
    )
    code, _, err = await cli("status")
    assert code == 3
    assert err.startswith("licensing status: storage failed to read the LicenseStatus table")
    assert "Traceback" not in err


async def test_utf16_users_file_from_powershell_is_read(tenant: EmulatedTenant, cli: Cli, tmp_path: Path) -> None:
    """PowerShell 5's Out-File writes UTF-16 with a byte-order mark: read as such, not refused."""
    user = hire(tenant, "utf16")
    listing = tmp_path / "users.txt"
    listing.write_text(f"UserPrincipalName\r\n{user.user_principal_name}\r\n", encoding="utf-16")
    code, out, _ = await cli("assign", "--from-file", str(listing), "--sku", "EMS", "--json")
    assert code == 0
    assert [r["outcome"] for r in json.loads(out)["results"]] == ["assigned"]
    listing.write_bytes(b"upn\n\xff\xfe\xfa broken\n")
    code, _, err = await cli("assign", "--from-file", str(listing), "--sku", "EMS")
    assert code == 2
    assert "neither UTF-8 nor UTF-16" in err


async def test_bad_usage_location_and_unexpected_errors_have_their_exit_codes(
    tenant: EmulatedTenant, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--usage-location usa is a usage error (2) before anything is sent; a bug is one line and exit 4."""
    user = hire(tenant, "codes", location=None)
    with pytest.raises(SystemExit) as usage:
        await cli("assign", user.user_principal_name, "--sku", "EMS", "--usage-location", "usa")
    assert usage.value.code == 2
    code, out, _ = await cli("assign", user.user_principal_name, "--sku", "EMS", "--usage-location", "fr", "--json")
    assert (code, json.loads(out)["results"][0]["requests"][0]["body"]) == (0, {"usageLocation": "FR"})

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_render, "skus", broken)
    code, _, err = await cli("skus")
    assert code == 4
    assert err.strip() == "licensing skus: unexpected RuntimeError: a bug (a bug; --debug shows where)"
    code, _, err = await cli("skus", "--debug")
    assert code == 4
    assert "Traceback" in err


async def test_verify_names_a_wrong_disabled_set_while_plans_still_provision(tenant: EmulatedTenant, cli: Cli) -> None:
    """INTUNE_A left enabled and still PendingProvisioning: failed at once, naming both disabled sets."""
    user = hire(tenant, "pendingwrong")
    tenant.state.assign_license(user.id, [{"skuId": EMS, "disabledPlans": []}], [])
    tenant.state.force_status(user.id, "INTUNE_A", "PendingProvisioning")
    code, out, _ = await cli("verify", user.user_principal_name, "--json")
    [lic] = json.loads(out)[0]["licenses"]
    assert code == 1
    assert lic["outcome"] == "failed"
    assert lic["reason"] == "EMS is assigned with disabled plans none; the policy disables INTUNE_A"


async def test_policy_check_what_if_names_an_unknown_user_and_leaves_stderr_clean(
    tenant: EmulatedTenant, cli: Cli
) -> None:
    """An unknown --user is a what-if row; a sample smaller than the tenant leaves no stray paging on stderr."""
    code, out, err = await cli("policy", "check", "--against-tenant", "--user", "ghost@contoso.onmicrosoft.com",
                               "--json")  # fmt: skip
    [row] = json.loads(out)["whatIf"]
    assert (code, row["action"], err) == (0, "not found", "")
    assert len(tenant.state.users) > 2
    code, _, err = await cli("policy", "check", "--against-tenant", "--sample", "2")
    assert (code, err) == (0, "")


async def test_verify_says_a_group_holds_the_policy_sku(tenant: EmulatedTenant, cli: Cli) -> None:
    """EMS only through a group: nothing expected of the app (exit 0), and the output says a group holds it."""
    user = hire(tenant, "grouponly")
    tenant.state.assign_license(user.id, [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], [])
    user.assignments[0].assigned_by_group = "group-7"
    code, out, _ = await cli("verify", user.user_principal_name, "--json")
    [result] = json.loads(out)
    assert (code, result["licenses"]) == (0, [])
    assert [(u["sku"], u["viaGroup"]) for u in result["unmanaged"]] == [("EMS", True)]
    code, out, _ = await cli("verify", user.user_principal_name)
    assert "held via a group" in out


async def test_status_recount_sets_the_page_totals_from_the_table_after_an_upgrade(
    tenant: EmulatedTenant, cli: Cli, cli_storage: Storage
) -> None:
    """Rows written before the counters existed are counted by `status --recount`, and the totals are kept."""
    from licensing.adapters.storage import counters, failure_index  # noqa: PLC0415  # what the page reads

    for user, outcome in (("u1", "verified"), ("u2", "verified"), ("u3", "failed")):
        await cli_storage.put_status(StatusRecord(user, "EMS", user, outcome, "why", "r", "hr"))  # type: ignore[arg-type]
    index = cli_storage.table(failure_index.INDEX_TABLE)
    async for row in index.list_entities():  # as an install from before the counters: rows, no totals
        await index.delete_entity(row["PartitionKey"], row["RowKey"])
    assert (await counters.outcome_totals(cli_storage))["verified"] == 0
    code, out, err = await cli("status", "--recount", "--json")
    assert (code, err) == (0, "")
    assert (json.loads(out)["outcomes"]["verified"], json.loads(out)["outcomes"]["failed"]) == (2, 1)
    kept = await counters.outcome_totals(cli_storage)
    assert (kept["verified"], kept["failed"]) == (2, 1)
