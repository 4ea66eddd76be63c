"""The one place that picks the Azure credential for Storage and Graph: the app's managed identity when running in
Azure, the signed-in admin (``az login``) anywhere else, unless a setting forces one.

azure-identity is imported inside the functions, never at module level: the Functions worker imports the app to
index it, and every cold start would pay for the SDK (tests/unit/test_cold_start.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from licensing.settings import Settings, StorageSettings

Choice = Literal["auto", "managed-identity", "default"]

# Running in Azure, told the way azure-identity tells a managed-identity endpoint is there (ManagedIdentityCredential
# in azure/identity/_credentials/managed_identity.py, azure-identity 1.27, github.com/Azure/azure-sdk-for-python,
# sdk/identity/azure-identity): IDENTITY_ENDPOINT with IDENTITY_HEADER is App Service and Functions (Flex
# Consumption included); MSI_ENDPOINT is Cloud Shell and Azure ML (and App Service's older API). WEBSITE_INSTANCE_ID is
# set by App Service on every instance, identity or not (learn.microsoft.com/azure/app-service/reference-app-settings,
# "Scaling"): there a human's sign-in cannot exist, so the managed identity is the only candidate and its error names
# the real fix. An Azure VM's IMDS-only identity sets none of these: force managed-identity there.
_ENDPOINT_PAIRS = (("IDENTITY_ENDPOINT", "IDENTITY_HEADER"), ("MSI_ENDPOINT",), ("WEBSITE_INSTANCE_ID",))


def running_in_azure(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs on an Azure host that gives it a managed identity (see _ENDPOINT_PAIRS)."""
    env = os.environ if env is None else env
    return any(all(env.get(name) for name in names) for names in _ENDPOINT_PAIRS)


def credential(choice: Choice, *, client_id: str | None, env: Mapping[str, str] | None = None) -> AsyncTokenCredential:
    """The async credential for ``choice``; the caller closes it.

    - ``managed-identity``, or ``auto`` in Azure: ManagedIdentityCredential (the user-assigned identity ``client_id``
      when given, else the system-assigned one).
    - ``auto`` anywhere else: DefaultAzureCredential without its managed-identity step (we already know there is no
      identity endpoint, and the IMDS probe would only add a timeout on a laptop). It tries, in this order: a service
      principal in AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET (or _CERTIFICATE_PATH) (EnvironmentCredential),
      workload identity (AZURE_FEDERATED_TOKEN_FILE), the shared token cache (Windows), VS Code's Azure sign-in,
      the Azure CLI (``az login``), Azure PowerShell (``Connect-AzAccount``), the Azure Developer CLI (``azd auth
      login``). The async DefaultAzureCredential has no interactive browser step at all: nothing ever opens a browser.
      AZURE_TOKEN_CREDENTIALS (azure-identity's own setting) can narrow the chain further, e.g. to AzureCliCredential.
    - ``default``: the whole DefaultAzureCredential chain, managed identity included (the setting's old meaning).
    """
    if choice == "managed-identity" or (choice == "auto" and running_in_azure(env)):
        from azure.identity.aio import ManagedIdentityCredential  # noqa: PLC0415  # lazy: cold start

        return ManagedIdentityCredential(client_id=client_id)
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415  # lazy: cold start

    signed_in: AsyncTokenCredential = DefaultAzureCredential(exclude_managed_identity_credential=choice == "auto")
    return signed_in


def storage_credential(settings: StorageSettings) -> AsyncTokenCredential:
    """Storage's credential: the managed identity when ``AzureWebJobsStorage__credential=managedidentity`` (how the
    deployment configures the app), otherwise auto (see ``credential``), with ``AzureWebJobsStorage__clientId``."""
    return credential(settings.credential, client_id=settings.client_id)


def graph_credential(settings: Settings) -> AsyncTokenCredential | None:
    """Graph's credential per LICENSING_GRAPH_AUTH (auto, managed-identity, default) with AZURE_CLIENT_ID; None for
    ``none`` (anonymous: Settings allows it only against a loopback emulator)."""
    if settings.graph_auth == "none":
        return None
    return credential(settings.graph_auth, client_id=settings.graph_client_id)
