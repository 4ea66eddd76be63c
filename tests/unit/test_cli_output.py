"""The CLI's output rules: column widths that fit without cutting words, CSV cells, --since, and what an admin is
told when storage refuses their sign-in or they lack a data role (a fake storage raising azure-core's errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from licensing.cli.main import EXIT_ERROR, access_advice, main
from licensing.cli.output import csv_cell, fit_widths
from licensing.cli.since import cutoff
from licensing.cli.users_file import CommandLineError
from licensing.core.errors import TransientError
from licensing.settings import Settings

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
UPN = "a.rather.long.name@contoso.onmicrosoft.com"
REASON = "the policy disables INTUNE_A but it is Success on this user (plan states from licenseDetails)"


def test_a_table_that_fits_keeps_its_natural_widths() -> None:
    """Columns that fit on one line each are left to the table (None)."""
    assert fit_widths([["user", "x@y"], ["outcome", "verified"]], room=40) is None


def test_narrow_room_wraps_the_reason_and_keeps_every_word_whole() -> None:
    """Each column keeps its longest word; the spare room goes to the text that would take the most lines."""
    widths = fit_widths([["user", UPN], ["sku", "EMS"], ["reason", REASON]], room=70)
    assert widths is not None
    assert sum(widths) <= 70
    assert widths[:2] == [len(UPN), 3]
    assert widths[2] >= max(len(w) for w in REASON.split())


def test_words_wider_than_the_room_widen_the_table_rather_than_cut_an_id() -> None:
    """When even the longest words do not fit, the widths are those words: a GUID is never folded."""
    guid = "0f7c3e2a-1b2c-4d5e-8f90-123456789abc"
    assert fit_widths([["userId", guid], ["user", UPN]], room=40) == [len(guid), len(UPN)]


def test_csv_cells_use_the_json_vocabulary() -> None:
    """Lists space-separated, mappings name=value, booleans true/false, times ISO 8601, None empty."""
    assert [csv_cell(v) for v in (["A", "B"], {"A": "Success"}, True, NOW, None, 3)] == [
        "A B",
        "A=Success",
        "true",
        NOW.isoformat(),
        "",
        3,
    ]


@pytest.mark.parametrize(
    ("text", "oldest"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2025-02-01", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-02-01T08:00+01:00", datetime(2025, 2, 1, 7, tzinfo=UTC)),
    ],
)
def test_since_takes_an_age_or_a_date_in_utc(text: str, oldest: datetime) -> None:
    """--since 7d/12h/30m counts back from now; a date without an offset is UTC."""
    assert cutoff(text, now=NOW) == oldest


def test_since_names_the_accepted_forms() -> None:
    """Anything else is a command-line error (exit 2) that shows both forms."""
    with pytest.raises(CommandLineError, match=r"use a number and d, h or m, e.g. 7d, or a date"):
        cutoff("soon", now=NOW)


class StorageRefusal(HttpResponseError):
    """HttpResponseError as the storage SDKs raise it: their error mapping adds the service's error code."""

    error_code: str


def refused(code: str, status: int = 403) -> HttpResponseError:
    """What the storage SDKs raise when the service refuses an Entra-authenticated request."""
    error = StorageRefusal(message=f"This request is not authorized to perform this operation.\nErrorCode:{code}")
    error.status_code, error.error_code = status, code
    return error


class RefusingStorage:
    """Storage whose every read fails the way production storage fails for an admin without a sign-in or a role."""

    error: Exception = RuntimeError("set by the test")

    @classmethod
    def from_settings(cls, _: object) -> RefusingStorage:
        """One fake per command, like the real Storage."""
        return cls()

    async def statuses(self, *_: Any, **__: Any) -> AsyncIterator[object]:  # what Storage.statuses takes
        """Fails on the first read, as a table query does."""
        raise self.error
        yield  # an async generator, like the real one

    async def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> type[RefusingStorage]:
    """The CLI against the deployed account by its name only (no Azurite, no Graph credential), storage faked."""
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__credential", raising=False)
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "stlicensing01")
    monkeypatch.setenv("LICENSING_GRAPH_AUTH", "none")
    monkeypatch.setenv("LICENSING_GRAPH_URL", "http://127.0.0.1:9/v1.0")
    monkeypatch.setattr("licensing.cli.records.Storage", RefusingStorage)
    return RefusingStorage


def test_a_missing_table_role_names_the_role_the_account_and_the_docs(
    refusing: type[RefusingStorage], capsys: pytest.CaptureFixture[str]
) -> None:
    """`licensing status` refused with 403 AuthorizationPermissionMismatch: one line naming the role, exit 3."""
    refusing.error = refused("AuthorizationPermissionMismatch")
    assert main(["status"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "you need the Storage Table Data Reader role on stlicensing01 for `licensing status`" in err
    assert "docs/operations.md#roles" in err
    assert "Traceback" not in err


def test_no_sign_in_says_to_run_az_login(refusing: type[RefusingStorage], capsys: pytest.CaptureFixture[str]) -> None:
    """No az login (DefaultAzureCredential found nobody): the line says to run az login, exit 3."""
    refusing.error = ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")
    assert main(["status", "--json"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "could not sign in to storage account stlicensing01" in err
    assert "run az login" in err


def test_a_forced_managed_identity_is_named_instead_of_az_login(
    refusing: type[RefusingStorage], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AzureWebJobsStorage__credential=managedidentity off Azure: the line says to unset it, not to run az login."""
    monkeypatch.setenv("AzureWebJobsStorage__credential", "managedidentity")
    refusing.error = ClientAuthenticationError("ManagedIdentityCredential authentication unavailable")
    assert main(["status"]) == EXIT_ERROR
    assert "unset AzureWebJobsStorage__credential" in capsys.readouterr().err


def test_roles_named_are_those_of_the_command() -> None:
    """requeue needs the table reader and the queue sender; sweep the table, queue and blob roles it writes with."""
    storage = Settings.from_env({"AzureWebJobsStorage__accountName": "stlicensing01"}).storage
    wrapped = TransientError("storage failed to send to license-requests: HttpResponseError")
    wrapped.__cause__ = refused("AuthorizationPermissionMismatch")
    requeue = access_advice(wrapped, "requeue", storage) or ""
    assert "the roles Storage Table Data Reader, Storage Queue Data Message Sender on stlicensing01" in requeue
    sweep = access_advice(refused("AuthorizationPermissionMismatch"), "sweep", storage) or ""
    assert "Storage Table Data Contributor, Storage Queue Data Message Sender, Storage Blob Data Contributor" in sweep
    firewall = access_advice(refused("AuthorizationFailure"), "events", storage) or ""
    assert "network rules refuse this address" in firewall


def test_other_errors_are_left_as_they_are() -> None:
    """A 403 for another reason, a 500, or a Graph sign-in failure the Graph adapter already explained: no advice."""
    assert access_advice(refused("AuthorizationResourceTypeMismatch"), "status", None) is None
    assert access_advice(refused("InternalError", status=500), "status", None) is None
    graph_said = TransientError("could not get a Graph token to list SKUs")  # raised `from None` in the adapter
    graph_said.__context__, graph_said.__suppress_context__ = ClientAuthenticationError("no token"), True
    assert access_advice(graph_said, "skus", None) is None
