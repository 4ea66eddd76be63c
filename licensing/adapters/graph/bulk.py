"""Bulk reads for the sweep (part of the Graph adapter): paged users as raw JSON, delta links, $batch.

The SDK's typed models cost tens of microseconds per property to build; for 100k users that is the whole
time budget. These calls go through the same GraphServiceClient request adapter (auth, retry, redirect
middleware, our error translation) but parse the page with the json module into plain dicts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from licensing.adapters.graph.client import require_graph_url
from licensing.adapters.graph.errors import call
from licensing.adapters.graph.gateway import RAW_ERRORS, USER_SELECT, GraphGateway
from licensing.adapters.graph.read_budget import ReadBudget, retry_after
from licensing.adapters.graph.reads import odata_key, sku_from_json
from licensing.adapters.graph.telemetry import graph_route
from licensing.adapters.telemetry import catalog_read, throttled
from licensing.core.drift import DeviceTally
from licensing.core.errors import LicensingError, TransientError
from licensing.core.model import Catalog
from licensing.settings import GRAPH_RETRY_WAIT_CAP

log = logging.getLogger(__name__)
ERRORS = RAW_ERRORS
BATCH_LIMIT = 20  # Graph's $batch maximum
BATCH_RETRIES = 3  # for sub-requests answered 429/503 inside a 200 batch (the SDK only sees the outer 200)
SWEEP_SELECT = USER_SELECT  # the same properties as one user's read: both parse with reads.user_from_json
DEVICE_PAGE = 1000  # managedDevices honours $top up to 1000
# https://learn.microsoft.com/graph/delta-query-overview: a stale token answers 410 Gone (resyncRequired, with a
# Location to start over) or, on older deployments, 400 syncStateNotFound; either way: read everything again.
EXPIRED_DELTA_CODES = frozenset({"resyncrequired", "syncstatenotfound"})
# A userPrincipalName as Entra allows it (https://learn.microsoft.com/entra/identity/authentication/concept-sspr-policy,
# "Username policies"): up to 64 of A-Z a-z 0-9 ' . - _ ! # ^ ~ (and `$`, Graph's `$` UPNs: reads.odata_key), an @,
# up to 48 characters of DNS name. Anything else - a slash, ?, %, whitespace - is not a user and never enters a URL.
_GUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_UPN = re.compile(r"[A-Za-z0-9'.\-_!#^~$]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,46}[A-Za-z0-9])?")


class DeltaExpired(LicensingError):
    """The stored deltaLink is no longer valid: the sweep must read every user instead."""


def user_path(user: str) -> str | None:
    """``/users/{object id}`` or ``/users/{url-encoded UPN}`` (``/users('$x@...')`` for a `$` UPN) for a $batch
    sub-request; None when ``user`` is neither an object id (a GUID) nor a userPrincipalName. Pure.

    Keys read back from storage are data, not paths: ``x/../../users?$filter=`` must not become another request.
    """
    if _GUID.fullmatch(user):
        return f"/users/{user.lower()}"
    if not _UPN.fullmatch(user):
        return None
    if user.startswith("$"):
        return f"/users{odata_key(user)}"
    return "/users/" + quote(user, safe="@!$'~-._")  # a guest's #EXT# travels as %23EXT%23


class BulkReader:
    """Streaming reads with a request counter (the sweep reports how many Graph requests it made).

    With a ``budget`` (the sweep's), a read throttled with a Retry-After above GRAPH_RETRY_WAIT_CAP - which the SDK
    does not wait out - is sent again after it, while the budget lasts; without one, it fails as TransientError.
    """

    def __init__(self, graph: GraphGateway, *, budget: ReadBudget | None = None) -> None:
        self._client = graph.client
        self._adapter = graph.client.request_adapter
        self._budget = budget or ReadBudget.none()
        self.requests = 0
        self.delta_link: str | None = None

    async def _send(self, what: str, info: RequestInformation, *, delta: bool = False) -> dict[str, Any]:
        while True:
            self.requests += 1
            pending = self._adapter.send_primitive_async(info, "bytes", ERRORS)
            waits: list[float] = []  # the Retry-After of a 429/503 the SDK gave up on
            try:
                raw = await call(what, _answer(pending, delta=delta, waits=waits))
            except TransientError as exc:
                wait = max(waits, default=0.0)
                if wait <= GRAPH_RETRY_WAIT_CAP:
                    raise  # not throttled, or the SDK already waited out what it could (client.py)
                if not await self._budget.wait(wait):
                    raise TransientError(f"{exc.message} ({self._budget.refusal(wait)})") from None
                log.warning("%s: waited out Graph's Retry-After of %g s", what, wait)
                continue
            page: dict[str, Any] = json.loads(raw) if raw else {}
            return page

    def _follow(self, link: str, what: str) -> RequestInformation:
        """GET a link Graph gave us (or we stored): only below the configured Graph base URL (ForeignLink)."""
        return self._get(require_graph_url(link, self._adapter.base_url, what=what))

    def _get(self, url: str) -> RequestInformation:
        info = RequestInformation(Method.GET)
        info.url = url
        info.headers.try_add("Accept", "application/json")
        return info

    async def users(
        self, select: Sequence[str] = SWEEP_SELECT, *, page_size: int = 999
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Every user, 999 per page, following @odata.nextLink; the next page is fetched while one is used."""
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=list(select), top=page_size)
        config = RequestConfiguration(query_parameters=query)
        first = self._client.users.to_get_request_information(config)
        pending: asyncio.Task[dict[str, Any]] | None = asyncio.ensure_future(self._send("list users", first))
        try:
            while pending is not None:
                page = await pending
                link = page.get("@odata.nextLink")
                follow = self._follow(link, "the users list's @odata.nextLink") if link else None
                pending = asyncio.ensure_future(self._send("list users", follow)) if follow else None
                yield page.get("value") or []
        finally:
            if pending is not None and not pending.done():
                pending.cancel()  # the consumer stopped early: do not leave a request running

    async def catalog(self) -> Catalog:
        """GET /subscribedSkus as plain JSON (the typed models' first use alone costs seconds of imports)."""
        base = self._adapter.base_url.rstrip("/")
        page = await self._send("read subscribedSkus", self._get(f"{base}/subscribedSkus"))
        catalog = Catalog(tuple(sku_from_json(s) for s in page.get("value") or []))
        catalog_read(catalog)
        return catalog

    async def latest_delta_link(self, select: Sequence[str] = SWEEP_SELECT) -> str:
        """A deltaLink for "now" ($deltatoken=latest): the next incremental read starts here."""
        base = self._adapter.base_url.rstrip("/")
        page = await self._send(
            "start a users delta", self._get(f"{base}/users/delta?$select={','.join(select)}&$deltatoken=latest")
        )
        link = page.get("@odata.deltaLink")
        if not isinstance(link, str):
            raise TransientError("Graph returned no @odata.deltaLink for $deltatoken=latest")
        return require_graph_url(link, base, what="the new users @odata.deltaLink")

    async def delta(self, link: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Users changed since ``link``, page by page; afterwards ``delta_link`` holds the next starting point.

        Raises DeltaExpired when Graph no longer knows the link (or a page's skip token), ForeignLink when the link,
        a page's nextLink or the new deltaLink points anywhere but the Graph base URL (nothing is sent there).
        """
        request = self._follow(link, "the stored users deltaLink")
        while request:
            page = await self._send("read users delta", request, delta=True)
            yield page.get("value") or []
            url = page.get("@odata.nextLink")
            request = self._follow(url, "a users delta @odata.nextLink") if url else None
            if not url and (new := page.get("@odata.deltaLink")):
                self.delta_link = require_graph_url(new, self._adapter.base_url, what="the new users @odata.deltaLink")

    async def devices_per_user(self, tally: DeviceTally) -> None:
        """Count every Intune managed device into ``tally`` by its userId, page by page (1,000 a page, only id and
        userId selected; a page is dropped once counted). AccessDenied without DeviceManagementManagedDevices.Read.All.
        """
        base = self._adapter.base_url.rstrip("/")
        request = self._get(f"{base}/deviceManagement/managedDevices?$select=id,userId&$top={DEVICE_PAGE}")
        while request:
            page = await self._send("read managed devices", request)
            for device in page.get("value") or []:
                if device.get("userId"):  # a device without a primary user (kiosk, shared) counts for no one
                    tally.add(str(device["userId"]))
            url = page.get("@odata.nextLink")
            request = self._follow(url, "the managed devices @odata.nextLink") if url else None

    async def batch(self, paths: Sequence[str]) -> list[tuple[int, Any]]:
        """GET up to 20 relative paths in one POST /$batch; (status, body) per path, in the order of ``paths``.

        Graph answers a batch in any order (https://learn.microsoft.com/graph/json-batching): each answer is matched
        to its request by ``id``, never by position. Sub-requests throttled inside a successful batch are sent
        again after their Retry-After, when that is at most GRAPH_RETRY_WAIT_CAP or fits in the reader's budget;
        otherwise the 429 (503) is returned.
        """
        if len(paths) > BATCH_LIMIT:
            raise ValueError(f"$batch takes at most {BATCH_LIMIT} requests")
        if unsafe := [p for p in paths if not _relative_path(p)]:  # a caller's bug: build user paths with user_path
            raise ValueError(f"$batch takes relative Graph paths only, not {unsafe[0][:80]!r}")
        results: dict[str, tuple[int, Any]] = {}
        todo = {str(i): p for i, p in enumerate(paths)}
        for attempt in range(BATCH_RETRIES + 1):
            body = {"requests": [{"id": k, "method": "GET", "url": p} for k, p in todo.items()]}
            info = RequestInformation(Method.POST)
            info.url = f"{self._adapter.base_url.rstrip('/')}/$batch"
            info.headers.try_add("Accept", "application/json")
            info.set_stream_content(json.dumps(body).encode(), "application/json")
            answer = await self._send("run a $batch", info)
            wait = 0.0
            retrying: dict[str, tuple[int, Any]] = {}
            for item in answer.get("responses") or []:
                key, status = str(item.get("id")), int(item.get("status", 0))
                if key not in todo:
                    continue  # not one of ours (or answered twice): never matched by position
                if status == 429:  # inside a 200 batch: the middleware never sees these
                    throttled(method="GET", route=graph_route(todo[key].split("?")[0]))
                if status in {429, 503} and attempt < BATCH_RETRIES:
                    wait = max(wait, retry_after(item.get("headers")))
                    retrying[key] = (status, item.get("body"))
                    continue
                results[key] = (status, item.get("body"))
                del todo[key]
            if not todo:
                break
            if not await self._budget.wait_out(wait):  # too long to wait (client.py): the caller sees the status
                results.update(retrying)
                break
        for key in todo:  # still throttled after the retries (or never answered): the caller sees the status
            results.setdefault(key, (429, None))
        return [results[str(i)] for i in range(len(paths))]


async def _answer(pending: Any, *, delta: bool, waits: list[float]) -> Any:  # noqa: ANN401  # the SDK's awaitable
    """The SDK's answer; a delta read's expired link as DeltaExpired; a 429/503's Retry-After put into ``waits``."""
    try:
        return await pending
    except APIError as exc:
        status = exc.response_status_code
        code = str(getattr(getattr(exc, "error", None), "code", "") or "").lower()
        if delta and (status == 410 or (status == 400 and code in EXPIRED_DELTA_CODES)):
            raise DeltaExpired(f"the users deltaLink has expired ({status} {code})") from None
        if status in {429, 503}:
            waits.append(retry_after(exc.response_headers))
        raise


def _relative_path(path: str) -> bool:
    """``/users/...``: no scheme or host, fragment, dot segment or backslash that could make it another request."""
    route = path.split("?", 1)[0]
    return (
        path.startswith("/")
        and not path.startswith("//")
        and "#" not in path
        and "\\" not in path
        and ("/../" not in f"{route}/" and "/./" not in f"{route}/")
    )
