"""The CLI's rough edges from issue #13, each as an admin meets it: a real CLI against the emulated tenant."""

from __future__ import annotations

import csv
import io
import json
import re
from importlib.metadata import version

import pytest

from licensing.adapters.storage.account import Storage
from licensing.cli.main import main
from licensing.core.records import AuditEvent, StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.tenant import EmulatedTenant
from tests.conftest import wipe_storage
from tests.e2e.test_cli import Cli, cli, cli_storage
from tests.helpers import EMS, INTUNE_A, hire

__all__ = ["cli", "cli_storage"]  # fixtures shared with test_cli.py
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`licensing --version` prints pyproject's version (from the installed metadata) and exits 0."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert (done.value.code, capsys.readouterr().out) == (0, f"licensing {version('m365-licensing')}\n")


async def test_global_options_go_before_or_after_the_command(tenant: EmulatedTenant, cli: Cli) -> None:
    """`licensing --json skus` is JSON, `--csv --ids` before the command too; --json and --csv together is refused."""
    code, out, _ = await cli("--json", "skus")
    assert (code, {s["sku"] for s in json.loads(out)} >= {"EMS", "EMSPREMIUM"}) == (0, True)
    code, out, _ = await cli("--csv", "skus", "--plans")
    assert (code, out.splitlines()[0].split(",")[:2]) == (0, ["sku", "skuId"])
    code, out, _ = await cli("--ids", "skus")
    assert EMS in out
    with pytest.raises(SystemExit) as refused:
        await cli("--json", "skus", "--csv")
    assert refused.value.code == 2


async def test_tables_show_guids_only_with_ids(
    tenant: EmulatedTenant, cli: Cli, cli_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`skus` and `status` tables carry no GUIDs or request ids unless --ids asks; --json always has them."""
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no id is folded out of the pattern's reach
    user_id = "0f7c3e2a-1b2c-4d5e-8f90-123456789abc"
    await cli_storage.put_status(
        StatusRecord(user_id, "EMS", "ids@contoso.onmicrosoft.com", "failed", "why", "req-42", "hr")
    )
    for args in (("skus",), ("status",)):
        code, out, _ = await cli(*args)
        assert (code, GUID.findall(out)) == (0, []), args
    code, out, _ = await cli("status", "--ids")
    assert (user_id in out, "req-42" in out) == (True, True)
    code, out, _ = await cli("status", "--json")
    assert (json.loads(out)[0]["userId"], json.loads(out)[0]["requestId"]) == (user_id, "req-42")


async def test_status_requeue_and_events_on_fresh_storage_say_nothing_is_recorded(
    tenant: EmulatedTenant, cli: Cli, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tables yet (nothing ever ran): status, requeue and events are empty and exit 0, not a bug (exit 4)."""
    await wipe_storage(azurite.connection_string)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    code, out, err = await cli("status")
    assert (code, err) == (0, "")
    assert "the table does not exist yet: nothing has been recorded" in out
    code, out, _ = await cli("status", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = await cli("requeue", "--json")
    assert (code, json.loads(out)["requeued"]) == (0, [])
    user = hire(tenant, "fresh")
    code, out, err = await cli("events", user.user_principal_name, "--json")
    assert (code, json.loads(out), err) == (0, [], "")


async def test_verify_of_a_never_licensed_user_says_not_assigned(tenant: EmulatedTenant, cli: Cli) -> None:
    """A user who never had EMS: `not-assigned`, with the command that assigns it, never `failed`; exit 1."""
    user = hire(tenant, "never")
    code, out, _ = await cli("verify", user.user_principal_name)
    assert code == 1
    assert "not-assigned" in out
    assert "failed" not in out
    code, out, _ = await cli("verify", user.user_principal_name, "--csv")
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert (row["sku"], row["outcome"]) == ("EMS", "not-assigned")
    assert f"licensing assign {user.user_principal_name} --sku EMS --disable INTUNE_A" in row["reason"]


async def test_remove_dry_run_says_would_be_removed_in_every_column(
    tenant: EmulatedTenant, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dry-run: outcome and reason both say "would be removed" (table, JSON); the real run then says removed."""
    monkeypatch.setenv("COLUMNS", "200")  # the wording is under test here, not the wrapping
    user = hire(tenant, "preview")
    tenant.state.assign_license(user.id, [{"skuId": EMS, "disabledPlans": [INTUNE_A]}], [])
    code, out, _ = await cli("remove", user.user_principal_name, "--sku", "EMS", "--dry-run", "--json")
    [result] = json.loads(out)["results"]
    assert (code, result["outcome"], result["reason"]) == (
        0,
        "would be removed",
        "direct EMS assignment would be removed",
    )
    code, out, _ = await cli("remove", user.user_principal_name, "--sku", "EMS", "--dry-run")
    assert re.findall(r"(?<!be )removed", out) == []
    assert user.assignments
    code, out, _ = await cli("remove", user.user_principal_name, "--sku", "EMS", "--json")
    assert json.loads(out)["results"][0]["reason"] == "direct EMS assignment removed"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["assign", "{upn}", "--sku", "SPE_E5"], "--sku 'SPE_E5': this tenant does not subscribe to it"),
        (["remove", "{upn}", "--sku", "SPE_E5"], "--sku 'SPE_E5': this tenant does not subscribe to it"),
        (["assign", "{upn}", "--sku", "EMS", "--disable", "INTUNE_B"], "--disable 'INTUNE_B': EMS has no such plan"),
        (["assign", "{upn}", "--sku", "EMSPREMIUM"], "(`licensing skus` shows the seats)"),
    ],
    ids=["unknown-sku", "remove-unknown-sku", "unknown-plan", "no-seats"],
)
async def test_command_line_errors_name_the_option_not_a_policy_rule(
    tenant: EmulatedTenant, cli: Cli, args: list[str], says: str
) -> None:
    """A bad --sku, --disable or a SKU without seats is explained in the command line's words."""
    user = hire(tenant, "wording")
    code, _, err = await cli(*[a.format(upn=user.user_principal_name) for a in args])
    assert code == 3
    assert says in err
    assert "rule" not in err


async def test_status_wraps_whole_reasons_to_the_terminal_width(
    cli: Cli, cli_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 400-character reason is shown whole, wrapped between words, every line within COLUMNS."""
    words = [f"word{i:03d}" for i in range(50)]
    await cli_storage.put_status(
        StatusRecord("u-long", "EMS", "long@contoso.onmicrosoft.com", "failed", " ".join(words), "r", "hr")
    )
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = await cli("status")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    assert [w for w in words if not re.search(rf"\b{w}\b", out)] == []


async def test_every_command_speaks_one_json_vocabulary(tenant: EmulatedTenant, cli: Cli, cli_storage: Storage) -> None:
    """skus, assign, verify, status, events and policy check name things alike; lists are arrays; CSV = JSON."""
    user = hire(tenant, "vocab")
    _, out, _ = await cli("assign", user.user_principal_name, "--sku", "EMS", "--disable", "INTUNE_A", "--json")
    [assigned] = json.loads(out)["results"]
    assert {k: assigned[k] for k in ("user", "userId", "sku", "outcome", "disabledPlans")} == {
        "user": user.user_principal_name,
        "userId": user.id,
        "sku": "EMS",
        "outcome": "assigned",
        "disabledPlans": ["INTUNE_A"],
    }
    _, out, _ = await cli("verify", user.user_principal_name, "--json")
    [checked] = json.loads(out)
    [lic] = checked["licenses"]
    assert (checked["userId"], lic["sku"], lic["skuId"], lic["outcome"]) == (user.id, "EMS", EMS, "verified")
    assert {p["plan"]: p["status"] for p in lic["planChecks"]}["INTUNE_A"] == "Disabled"
    _, out, _ = await cli("skus", "--json")
    assert {"sku", "skuId", "free", "low"} <= set(json.loads(out)[0])
    row = StatusRecord(
        user.id,
        "EMS",
        user.user_principal_name,
        "verified",
        "ok",
        "r1",
        "hr",
        disabled_plans=("INTUNE_A",),
        plan_statuses={"INTUNE_A": "Disabled"},
    )
    await cli_storage.put_status(row)
    _, out, _ = await cli("status", "--json")
    [status] = json.loads(out)
    assert {k: status[k] for k in ("user", "userId", "sku", "outcome", "disabledPlans", "planStatuses")} == {
        "user": user.user_principal_name,
        "userId": user.id,
        "sku": "EMS",
        "outcome": "verified",
        "disabledPlans": ["INTUNE_A"],
        "planStatuses": {"INTUNE_A": "Disabled"},
    }
    assert status["updatedAt"] == row.updated_at.isoformat()
    _, out, _ = await cli("status", "--csv")
    assert set(out.splitlines()[0].split(",")) == set(status)  # the CSV header is the JSON's field names
    await cli_storage.append_event(AuditEvent(user.id, "LicenseAssigned", "r1", "hr", sku="EMS", after=("INTUNE_A",)))
    _, out, _ = await cli("events", user.user_principal_name, "--json")
    assert {k: json.loads(out)[0][k] for k in ("user", "userId", "sku", "disabledAfter")} == {
        "user": user.user_principal_name,
        "userId": user.id,
        "sku": "EMS",
        "disabledAfter": ["INTUNE_A"],
    }
    _, out, _ = await cli("policy", "check", "--json")
    everyone = next(r for r in json.loads(out)["rules"] if r["rule"] == "everyone")
    assert everyone["disabledPlans"] == ["INTUNE_A"]
