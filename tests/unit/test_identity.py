"""Which credential Storage and Graph get: the managed identity in Azure, the signed-in admin elsewhere, or the one a
setting forces; and the one-export storage shorthand. azure-identity's real classes, no token ever requested."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.identity.aio import AzureCliCredential, DefaultAzureCredential, ManagedIdentityCredential

from licensing.adapters import identity
from licensing.adapters.identity import graph_credential, running_in_azure, storage_credential
from licensing.settings import Settings, SettingsError

# Every variable that tells azure-identity (or us) a managed-identity endpoint is there.
HOST_VARIABLES = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "WEBSITE_INSTANCE_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
)
APP_SERVICE = {"IDENTITY_ENDPOINT": "http://127.0.0.1:41000/msi/token", "IDENTITY_HEADER": "not-a-secret"}
ACCOUNT = {"AzureWebJobsStorage__accountName": "stlicensing01"}


class RecordingManagedIdentity(ManagedIdentityCredential):
    """The real ManagedIdentityCredential, remembering the client id it was given."""

    client_ids: list[str | None] = []  # noqa: RUF012  # reset by the fixture, read by the tests

    def __init__(self, *, client_id: str | None = None, **kwargs: Any) -> None:  # what the SDK takes
        RecordingManagedIdentity.client_ids.append(client_id)
        super().__init__(client_id=client_id, **kwargs)


@pytest.fixture
def outside_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin's machine: no managed-identity endpoint of any kind; managed identities are recorded."""
    for name in HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    RecordingManagedIdentity.client_ids = []
    monkeypatch.setattr("azure.identity.aio.ManagedIdentityCredential", RecordingManagedIdentity)


@pytest.fixture
def in_app_service(outside_azure: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Functions host: App Service's identity endpoint and header (a closed loopback port: nothing is asked)."""
    for name, value in APP_SERVICE.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def closing() -> AsyncIterator[list[Any]]:
    """Credentials a test made, closed after it."""
    made: list[Any] = []
    yield made
    for credential in made:
        await credential.close()


def chain(credential: Any) -> list[type]:
    """The credential types a DefaultAzureCredential tries, in order."""
    return [type(c) for c in credential.credentials]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (APP_SERVICE, True),
        ({"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"}, True),
        ({"WEBSITE_INSTANCE_ID": "6a1f0e"}, True),
        ({"IDENTITY_ENDPOINT": "http://127.0.0.1:41000/msi/token"}, False),  # Azure Arc needs IMDS_ENDPOINT too
        ({"IDENTITY_ENDPOINT": "", "IDENTITY_HEADER": "x", "WEBSITE_INSTANCE_ID": ""}, False),
        ({}, False),
    ],
)
def test_running_in_azure_is_told_by_the_hosts_identity_variables(env: dict[str, str], expected: bool) -> None:
    """IDENTITY_ENDPOINT with IDENTITY_HEADER, MSI_ENDPOINT, or WEBSITE_INSTANCE_ID; empty values count as unset."""
    assert running_in_azure(env) is expected


@pytest.mark.usefixtures("in_app_service")
def test_in_azure_auto_uses_the_user_assigned_managed_identity(closing: list[Any]) -> None:
    """LICENSING_GRAPH_AUTH unset (auto) on a Functions host: ManagedIdentityCredential with AZURE_CLIENT_ID."""
    settings = Settings.from_env({**ACCOUNT, "AzureWebJobsStorage__clientId": "mi-client", "AZURE_CLIENT_ID": "mi-2"})
    graph = graph_credential(settings)
    storage = storage_credential(settings.require_storage())
    closing += [graph, storage]
    assert settings.graph_auth == "auto"
    assert isinstance(graph, ManagedIdentityCredential)
    assert isinstance(storage, ManagedIdentityCredential)
    assert RecordingManagedIdentity.client_ids == ["mi-2", "mi-client"]


@pytest.mark.usefixtures("outside_azure")
def test_outside_azure_auto_signs_in_as_the_admin_without_probing_for_a_managed_identity(closing: list[Any]) -> None:
    """On a laptop both get DefaultAzureCredential: az login is in its chain, the IMDS managed identity is not."""
    settings = Settings.from_env(ACCOUNT)
    graph = graph_credential(settings)
    storage = storage_credential(settings.require_storage())
    closing += [graph, storage]
    for credential in (graph, storage):
        assert isinstance(credential, DefaultAzureCredential)
        assert AzureCliCredential in chain(credential)
        assert ManagedIdentityCredential not in chain(credential)
        assert not any("Interactive" in kind.__name__ for kind in chain(credential))  # nothing opens a browser
    assert RecordingManagedIdentity.client_ids == []


@pytest.mark.usefixtures("outside_azure")
def test_settings_force_the_managed_identity_outside_azure(closing: list[Any]) -> None:
    """LICENSING_GRAPH_AUTH=managed-identity and AzureWebJobsStorage__credential=managedidentity win over auto."""
    env = {**ACCOUNT, "LICENSING_GRAPH_AUTH": "managed-identity", "AzureWebJobsStorage__credential": "ManagedIdentity"}
    settings = Settings.from_env({**env, "AzureWebJobsStorage__clientId": "mi-client"})
    graph = graph_credential(settings)
    storage = storage_credential(settings.require_storage())
    closing += [graph, storage]
    assert isinstance(graph, ManagedIdentityCredential)
    assert isinstance(storage, ManagedIdentityCredential)
    assert RecordingManagedIdentity.client_ids == [None, "mi-client"]


@pytest.mark.usefixtures("in_app_service")
def test_graph_auth_default_forces_the_whole_default_chain_even_in_azure(closing: list[Any]) -> None:
    """LICENSING_GRAPH_AUTH=default keeps its meaning: DefaultAzureCredential, its managed-identity step included."""
    graph = graph_credential(Settings.from_env({"LICENSING_GRAPH_AUTH": "default"}))
    closing.append(graph)
    assert isinstance(graph, DefaultAzureCredential)
    assert any(issubclass(kind, ManagedIdentityCredential) for kind in chain(graph))


def test_graph_auth_none_has_no_credential() -> None:
    """LICENSING_GRAPH_AUTH=none (a loopback emulator only): no credential at all."""
    settings = Settings.from_env({"LICENSING_GRAPH_AUTH": "none", "LICENSING_GRAPH_URL": "http://127.0.0.1:9/v1.0"})
    assert graph_credential(settings) is None


def test_one_account_name_gives_all_three_service_uris() -> None:
    """AzureWebJobsStorage__accountName alone: blob, queue and table URIs of that account, auto credential."""
    storage = Settings.from_env(ACCOUNT).require_storage()
    assert storage.queue_service_uri == "https://stlicensing01.queue.core.windows.net"
    assert storage.table_service_uri == "https://stlicensing01.table.core.windows.net"
    assert storage.blob_service_uri == "https://stlicensing01.blob.core.windows.net"
    assert (storage.credential, storage.account, storage.connection_string) == ("auto", "stlicensing01", None)


def test_an_explicit_service_uri_wins_over_the_account_name() -> None:
    """A __queueServiceUri given next to __accountName is used as given (a private endpoint, another cloud)."""
    queue = "https://stlicensing01-secondary.queue.core.windows.net"
    storage = Settings.from_env({**ACCOUNT, "AzureWebJobsStorage__queueServiceUri": queue}).require_storage()
    assert storage.queue_service_uri == queue
    assert storage.table_service_uri == "https://stlicensing01.table.core.windows.net"


def test_a_connection_string_still_means_keys_or_azurite_and_no_credential() -> None:
    """AzureWebJobsStorage itself (Azurite) wins over the identity-based settings."""
    storage = Settings.from_env({**ACCOUNT, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}).require_storage()
    assert storage.connection_string == "UseDevelopmentStorage=true"
    assert storage.queue_service_uri is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AzureWebJobsStorage__accountName", "https://st1.blob.core.windows.net", "is not a storage account name"),
        ("AzureWebJobsStorage__accountName", "St_Licensing", "3-24 lower-case letters and digits"),
        ("AzureWebJobsStorage__credential", "azurecli", "use managedidentity .* or leave it unset"),
        ("LICENSING_GRAPH_AUTH", "msi", "use one of auto, managed-identity, default, none"),
    ],
)
def test_bad_credential_settings_name_the_setting_and_the_fix(name: str, value: str, message: str) -> None:
    """A URL where a name belongs, an unknown credential kind, an unknown Graph auth: refused with the fix."""
    with pytest.raises(SettingsError, match=message) as refused:
        Settings.from_env({**ACCOUNT, name: value})
    assert name in refused.value.message


def test_the_identity_module_imports_no_sdk_until_asked() -> None:
    """Cold start: azure-identity is imported inside the functions, not when the module loads."""
    source = inspect.getsource(identity)
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level if "azure" in line]


@pytest.mark.usefixtures("outside_azure")
async def test_the_storage_adapter_signs_in_as_the_admin_on_a_laptop() -> None:
    """Storage.from_settings with only an account name: DefaultAzureCredential on the account's table and queue URIs."""
    from licensing.adapters.storage.account import Storage  # noqa: PLC0415  # the adapter under test

    storage = Storage.from_settings(Settings.from_env(ACCOUNT).require_storage())
    try:
        assert isinstance(storage._credential, DefaultAzureCredential)  # what it signs in with
        assert storage.table("LicenseStatus").url.startswith("https://stlicensing01.table.core.windows.net")
    finally:
        await storage.close()
