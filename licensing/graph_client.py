"""Builds the GraphServiceClient: credential from settings, SDK middleware with our retry option."""

from __future__ import annotations

from typing import Protocol

import httpx
from kiota_abstractions.authentication import AnonymousAuthenticationProvider, AuthenticationProvider
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as sdk_default_options
from msgraph_core import GraphClientFactory

from licensing.settings import Settings

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]


class Closable(Protocol):
    """An async resource to close at shutdown (the HTTP client, a credential)."""

    async def close(self) -> None: ...


def build_client(settings: Settings) -> tuple[GraphServiceClient, httpx.AsyncClient, Closable | None]:
    """A GraphServiceClient (plus its httpx client and credential, to close) honouring the LICENSING_GRAPH_* settings.

    Throttling is left to the SDK's RetryHandler (429/503/504, honours Retry-After) plus the queue's
    redelivery; we only set its base delay so tests and the demo need not wait seconds per retry.
    """
    options = dict(sdk_default_options)
    options[RetryHandlerOption.get_key()] = RetryHandlerOption(delay=settings.graph_retry_delay_seconds, max_retries=3)
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.graph_timeout_seconds, connect=10.0))
    client = GraphClientFactory.create_with_default_middleware(client=http, options=options)
    provider, credential = _auth_provider(settings)
    adapter = GraphRequestAdapter(provider, client=client)
    adapter.base_url = settings.graph_url
    return GraphServiceClient(request_adapter=adapter), http, credential


def _auth_provider(settings: Settings) -> tuple[AuthenticationProvider, Closable | None]:
    if settings.graph_auth == "none":
        return AnonymousAuthenticationProvider(), None  # Settings refused this unless the URL is loopback
    if settings.graph_auth == "managed-identity":
        from azure.identity.aio import ManagedIdentityCredential  # noqa: PLC0415  # only in Azure

        credential = ManagedIdentityCredential(client_id=settings.graph_client_id)
    else:
        from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415  # admins' machines

        credential = DefaultAzureCredential()  # type: ignore[assignment]  # both are AsyncTokenCredential
    return AzureIdentityAuthenticationProvider(credential, scopes=GRAPH_SCOPES), credential
