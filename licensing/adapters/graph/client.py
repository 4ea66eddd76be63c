"""Builds the GraphServiceClient: credential from settings, the SDK's middleware with our retry policy and our
telemetry, and the rule that the Graph token goes to the configured Graph host and nowhere else."""

from __future__ import annotations

import time
from typing import Protocol

import httpx
from kiota_abstractions.authentication import AnonymousAuthenticationProvider, AuthenticationProvider
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import BaseMiddleware, RetryHandler
from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
from kiota_http.observability_options import ObservabilityOptions
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as sdk_default_options
from msgraph_core import GraphClientFactory
from msgraph_core.middleware import GraphTelemetryHandler
from msgraph_core.middleware.options import GraphTelemetryHandlerOption

from licensing.adapters.graph.telemetry import DEFAULT_PORTS, GraphCallTelemetry, graph_route
from licensing.adapters.identity import graph_credential
from licensing.core.errors import PermanentError
from licensing.settings import GRAPH_RETRY_WAIT_CAP, Settings

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
# One retry owner per kind of call. Identity writes (assignLicense, PATCH a user) are retried only by the queue's
# redelivery, which passes the shared write budget again (onboarding calls budget.permit before each write); the
# SDK retrying them would spend Graph's write quota behind the budget's back. Reads (GET, and $batch, a POST that
# carries only GETs here) keep the SDK's RetryHandler, bounded so that one call never outlives the per-user lease
# (adapters/storage/leases.py, 120 s) nor the function timeout (host.json functionTimeout, 300 s):
#   - at most MAX_RETRIES (3) retries, each waiting at most GRAPH_RETRY_WAIT_CAP (10 s): a longer Retry-After is not
#     waited out in-process, the call fails as TransientError and the queue redelivers later;
#   - no retry starts once RETRY_WINDOW (30 s) has passed since the first attempt;
#   - each attempt is bounded by LICENSING_GRAPH_TIMEOUT_SECONDS (T, default 30 s, at most 60 s).
# Worst case for one read: 30 s window + 10 s wait + one last attempt T = 70 s (100 s at T = 60 s), below the 120 s
# lease and the 300 s function timeout; the SDK default was 3 waits of up to 179 s each (537 s) plus 4 attempts.
# Worst case for one write: a single attempt, T = 30 s (60 s). tests/unit/test_retry_policy.py checks these sums.
MAX_RETRIES = 3
RETRY_WINDOW = 30.0
_FIRST_ATTEMPT = "licensing.first_attempt"  # httpx request extension: monotonic time of the first attempt


class ForeignLink(PermanentError):
    """A URL the app was about to call that is not below the configured Graph base URL (LICENSING_GRAPH_URL)."""


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or DEFAULT_PORTS.get(scheme, 0)


def _refused(url: httpx.URL, base: httpx.URL, what: str) -> ForeignLink:
    host = url.netloc.decode(errors="replace")  # host and port only: never the userinfo, nor path and query
    where = f"{url.scheme}://{host}" if host else "a URL without a host"
    graph = f"{base.scheme}://{base.netloc.decode()}{base.path.rstrip('/')}/"
    return ForeignLink(
        f"refused to follow {what} to {where}: only {graph} is Microsoft Graph (LICENSING_GRAPH_URL), "
        "and the Graph token goes nowhere else"
    )


def require_graph_url(link: str, base_url: str, *, what: str) -> str:
    """``link`` when it has the base URL's scheme, host and port and a path below its path (``/v1.0/...``);
    otherwise ForeignLink naming the host. Links Graph hands back (@odata.nextLink, @odata.deltaLink) and links
    read back from storage are followed with the app's token, so each is checked before it is. Pure."""
    base = httpx.URL(base_url)
    try:
        url = httpx.URL(link)
    except (httpx.InvalidURL, TypeError):
        raise ForeignLink(f"refused to follow {what}: not a URL") from None
    below = url.path.startswith(base.path.rstrip("/") + "/") and "/../" not in f"{url.path}/"
    if _origin(url) != _origin(base) or url.userinfo or not below:
        raise _refused(url, base, what)
    return link


class GraphOriginGuard(BaseMiddleware):  # type: ignore[misc]  # kiota_http is untyped for mypy (skipped)
    """No request, a redirect included, leaves for another origin than the Graph base URL's.

    The auth provider's allowed hosts compare the host name only (kiota's AllowedHostsValidator): another port on
    the same host would still be given the token. This compares scheme, host and port, below every other handler.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self._base = httpx.URL(base_url)

    async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
        """Refuse a foreign origin before anything is sent; otherwise pass the request on."""
        if _origin(request.url) != _origin(self._base):
            raise _refused(request.url, self._base, f"a {request.method} request")
        response: httpx.Response = await super().send(request, transport)
        return response


class Closable(Protocol):
    """An async resource to close at shutdown (the HTTP client, a credential)."""

    async def close(self) -> None: ...


def identity_write(method: str, path: str) -> bool:
    """POST /users/{id}/assignLicense or PATCH /users/{id} (also the ``/users('$x@contoso.com')`` form). Pure."""
    method = method.upper()
    if method == "POST":
        return path.rstrip("/").rsplit("/", 1)[-1] == "assignLicense"
    # /users('$adm@contoso.com') templates as /{id}: only user routes are addressed that way.
    return method == "PATCH" and graph_route(path) in {"/users/{id}", "/{id}"}


class GraphRetryHandler(RetryHandler):  # type: ignore[misc]  # kiota_http is untyped for mypy (skipped)
    """The SDK's RetryHandler for reads only, with its waits capped (see the worst case above)."""

    async def send(self, request: httpx.Request, transport: httpx.AsyncBaseTransport) -> httpx.Response:
        """Stamp the first attempt's time, then let the SDK's loop run."""
        request.extensions.setdefault(_FIRST_ATTEMPT, time.monotonic())
        response: httpx.Response = await super().send(request, transport)
        return response

    def should_retry(self, request: httpx.Request, options: RetryHandlerOption, response: httpx.Response) -> bool:
        """Never an identity write; a read only within RETRY_WINDOW of its first attempt."""
        if identity_write(request.method, request.url.path):
            return False
        if time.monotonic() - request.extensions.get(_FIRST_ATTEMPT, time.monotonic()) > RETRY_WINDOW:
            return False
        return bool(super().should_retry(request, options, response))

    def get_delay_time(
        self, retry_count: int, response: httpx.Response | None = None, delay: float = RetryHandlerOption.DEFAULT_DELAY
    ) -> float:
        """The SDK's wait (Retry-After, else its backoff); past the cap, MAX_DELAY, at which the SDK gives up."""
        wait = float(super().get_delay_time(retry_count, response, delay))
        return wait if wait <= GRAPH_RETRY_WAIT_CAP else RetryHandlerOption.MAX_DELAY


def build_client(settings: Settings) -> tuple[GraphServiceClient, httpx.AsyncClient, Closable | None]:
    """A GraphServiceClient (plus its httpx client and credential, to close) honouring the LICENSING_GRAPH_* settings.

    The SDK's RetryHandler is replaced by GraphRetryHandler (reads only, capped waits); its base delay comes from
    LICENSING_GRAPH_RETRY_DELAY_SECONDS so tests and the demo need not wait seconds per retry.
    """
    options = dict(sdk_default_options)
    retry = RetryHandlerOption(delay=settings.graph_retry_delay_seconds, max_retries=MAX_RETRIES)
    options[RetryHandlerOption.get_key()] = retry
    options[UrlReplaceHandlerOption.get_key()] = UrlReplaceHandlerOption(enabled=False)  # only rewrites /me
    http = httpx.AsyncClient(timeout=httpx.Timeout(settings.graph_timeout_seconds, connect=10.0))
    # The SDK's default pipeline with our retry handler in its place, plus our telemetry innermost: it sees every
    # attempt, retried 429s included.
    middleware = [
        GraphRetryHandler(retry) if isinstance(m, RetryHandler) else m
        for m in KiotaClientFactory.get_default_middleware(options)
    ]
    middleware += [
        GraphTelemetryHandler(options=options[GraphTelemetryHandlerOption.get_key()]),
        GraphOriginGuard(settings.graph_url),
        GraphCallTelemetry(),
    ]
    client = GraphClientFactory.create_with_custom_middleware(middleware, client=http)
    provider, credential = _auth_provider(settings)
    adapter = GraphRequestAdapter(provider, client=client)
    adapter.base_url = settings.graph_url
    adapter.observability_options = ObservabilityOptions(include_euii_attributes=False)  # no URLs in SDK spans
    return GraphServiceClient(request_adapter=adapter), http, credential


def _auth_provider(settings: Settings) -> tuple[AuthenticationProvider, Closable | None]:
    credential = graph_credential(settings)  # LICENSING_GRAPH_AUTH: auto, managed-identity, default or none
    if credential is None:
        return AnonymousAuthenticationProvider(), None  # Settings refused this unless the URL is loopback
    # Without allowed_hosts kiota asks the credential for a token for any URL it is handed (an empty list allows
    # every host): a tenant-wide token must go only to the Graph host LICENSING_GRAPH_URL names.
    provider = AzureIdentityAuthenticationProvider(credential, scopes=GRAPH_SCOPES, allowed_hosts=graph_hosts(settings))
    return provider, credential


def graph_hosts(settings: Settings) -> list[str]:
    """The hosts the Graph token may be sent to: exactly the host of LICENSING_GRAPH_URL."""
    return [httpx.URL(settings.graph_url).host.lower()]
