"""Builds the GraphServiceClient: credential from settings, the SDK's middleware with our retry option and our
telemetry."""

from __future__ import annotations

from typing import Protocol

import httpx
from kiota_abstractions.authentication import AnonymousAuthenticationProvider, AuthenticationProvider
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
from kiota_http.observability_options import ObservabilityOptions
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as sdk_default_options
from msgraph_core import GraphClientFactory
from msgraph_core.middleware import GraphTelemetryHandler
from msgraph_core.middleware.options import GraphTelemetryHandlerOption

from licensing.adapters.graph.telemetry import GraphCallTelemetry
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
    options[UrlReplaceHandlerOption.get_key()] = UrlReplaceHandlerOption(enabled=False)  # only rewrites /me
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.graph_timeout_seconds, connect=10.0))
    # The SDK's default pipeline, plus our telemetry innermost: it sees every attempt, retried 429s included.
    middleware = [
        *KiotaClientFactory.get_default_middleware(options),
        GraphTelemetryHandler(options=options[GraphTelemetryHandlerOption.get_key()]),
        GraphCallTelemetry(),
    ]
    client = GraphClientFactory.create_with_custom_middleware(middleware, client=http)
    provider, credential = _auth_provider(settings)
    adapter = GraphRequestAdapter(provider, client=client)
    adapter.base_url = settings.graph_url
    adapter.observability_options = ObservabilityOptions(include_euii_attributes=False)  # no URLs in SDK spans
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
