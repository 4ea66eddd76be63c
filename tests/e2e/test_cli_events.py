"""`licensing events USER`: the audit trail (LicenseEvents) from the CLI, as the rollback section relies on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from licensing.adapters.storage.account import Storage
from licensing.core.queues import LICENSE_VERIFY_QUEUE
from licensing.core.records import AuditEvent
from licensing.dev.azurite import Azurite
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from tests.e2e.test_cli import Cli, cli, cli_storage
from tests.helpers import drain, hire, invoke, request

__all__ = ["cli", "cli_storage"]  # fixtures shared with test_cli.py


async def test_events_of_a_upn_read_the_object_id_and_the_key_kept_before_the_user_was_known(
    services: Services, tenant: EmulatedTenant, cli: Cli, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request deferred before the hire, then onboarding: `events UPN` shows both trails merged, newest first."""
    upn = "late@contoso.onmicrosoft.com"
    await invoke("onboard", request("Late@contoso.onmicrosoft.com", request_id="too-early"))
    user = hire(tenant, "late")
    await invoke("onboard", request(upn, request_id="hired"))
    await invoke("verify", (await drain(services, LICENSE_VERIFY_QUEUE))[0])
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)  # the cli fixture clears it
    code, out, err = await cli("events", "LATE@contoso.onmicrosoft.com", "--json")
    assert (code, err) == (0, "")
    found = json.loads(out)
    assert [e["at"] for e in found] == sorted((e["at"] for e in found), reverse=True)
    by_kind = {e["kind"]: e for e in found}
    early = by_kind["RequestDeferred"]  # "not found (new accounts take a moment to replicate)": kept under the UPN
    assert (early["userId"], early["requestId"]) == (upn, "too-early")
    assert "not found" in early["reason"]
    assigned = by_kind["LicenseAssigned"]
    assert (assigned["userId"], assigned["user"], assigned["sku"]) == (user.id, upn, "EMS")
    assert (assigned["disabledBefore"], assigned["disabledAfter"]) == (None, ["INTUNE_A"])
    assert "AssignmentVerified" in by_kind
    code, out, _ = await cli("events", user.id)  # the object id finds the early key too, through the UPN
    assert code == 0
    assert "RequestDeferred" in out
    assert "LicenseAssigned" in out


async def test_events_since_takes_an_age_or_a_date(tenant: EmulatedTenant, cli: Cli, cli_storage: Storage) -> None:
    """--since 2d and --since <a date> keep only the newer event; a word that is neither is a usage error."""
    user = hire(tenant, "dated")
    now = datetime.now(UTC)
    for days, kind in ((10, "LicenseAssigned"), (0, "LicenseRemoved")):
        event = AuditEvent(user.id, kind, f"r-{days}", "manual", sku="EMS", at=now - timedelta(days=days))  # type: ignore[arg-type]
        await cli_storage.append_event(event)
    code, out, _ = await cli("events", user.user_principal_name, "--json")
    assert (code, [e["kind"] for e in json.loads(out)]) == (0, ["LicenseRemoved", "LicenseAssigned"])
    for since in ("2d", (now - timedelta(days=5)).date().isoformat(), (now - timedelta(hours=1)).isoformat()):
        code, out, _ = await cli("events", user.user_principal_name, "--since", since, "--json")
        assert (code, [e["kind"] for e in json.loads(out)]) == (0, ["LicenseRemoved"]), since
    code, _, err = await cli("events", user.user_principal_name, "--since", "lately")
    assert code == 2
    assert "use a number and d, h or m, e.g. 7d, or a date" in err


async def test_events_of_a_user_graph_no_longer_knows(cli: Cli, cli_storage: Storage) -> None:
    """A deleted (or never existing) user: their events under what was typed still show; none at all is exit 3."""
    gone = "gone@contoso.onmicrosoft.com"
    await cli_storage.append_event(AuditEvent(gone, "RequestRejected", "r1", "hr", detail="user does not exist"))
    code, out, err = await cli("events", "Gone@contoso.onmicrosoft.com", "--csv")
    assert code == 0
    assert err.startswith("licensing events: Gone@contoso.onmicrosoft.com: ")
    assert "showing the events kept under what was given" in err
    header, row = out.splitlines()
    assert header == "at,kind,sku,disabledBefore,disabledAfter,rule,reason,source,requestId,user,userId"
    assert ",RequestRejected,,,,,user does not exist,hr,r1,Gone@contoso.onmicrosoft.com,gone@" in row
    code, out, err = await cli("events", "never@contoso.onmicrosoft.com")
    assert code == 3
    assert "no events are kept under 'never@contoso.onmicrosoft.com'" in err
