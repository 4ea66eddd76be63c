"""The Graph gateway: owns the one GraphServiceClient; every call goes through errors.call (ODataError -> ours)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from msgraph import GraphServiceClient
from msgraph.generated.directory.deleted_items.item.directory_object_item_request_builder import (
    DirectoryObjectItemRequestBuilder as DeletedItem,
)
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody,
)
from msgraph.generated.users.item.license_details.license_details_request_builder import (
    LicenseDetailsRequestBuilder,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

from licensing.adapters.graph.client import Closable, build_client
from licensing.adapters.graph.errors import call
from licensing.adapters.graph.fallback import observed_from_user_json
from licensing.adapters.graph.reads import observed_from_json, odata_key, sku_from_json, user_from_json
from licensing.adapters.telemetry import catalog_read
from licensing.core.errors import (
    AccessDenied,
    UserNotFound,
)
from licensing.core.model import Catalog, ObservedLicense, UserFacts
from licensing.core.records import utcnow
from licensing.settings import Settings

log = logging.getLogger(__name__)

USER_SELECT = [  # what reads.user_from_json parses; the sweep selects the same (bulk.SWEEP_SELECT)
    "id",
    "userPrincipalName",
    "accountEnabled",
    "usageLocation",
    "department",
    "jobTitle",
    "companyName",
    "employeeType",
    "country",
    "assignedLicenses",
    "licenseAssignmentStates",
]
RAW_ERRORS: dict[str, Any] = {"XXX": ODataError}  # every error status deserialises as ODataError
# App-only plan states (licenseDetails does not support application permissions): fallback.observed_from_user_json
FALLBACK_SELECT = ["id", "assignedLicenses", "assignedPlans", "provisionedPlans", "licenseAssignmentStates"]
USER_TYPE = "#microsoft.graph.user"  # @odata.type of a user among deleted items (directoryObjects)
_SLOT = "user-slot-0f3a"  # stands in for a `$` UPN while the SDK builds the URL; replaced by its ('...') key


class GraphPort(Protocol):
    """What the service layer needs from Graph."""

    async def catalog(self, *, fresh: bool = False) -> Catalog: ...
    @property
    def catalog_read_at(self) -> datetime | None: ...
    async def get_user(self, user: str) -> UserFacts: ...
    async def is_soft_deleted(self, user: str) -> bool: ...
    async def set_usage_location(self, user_id: str, location: str) -> None: ...
    async def assign(self, user_id: str, add: Sequence[tuple[str, Iterable[str]]], remove: Sequence[str]) -> None: ...
    async def plan_states(self, user_id: str) -> tuple[ObservedLicense, ...]: ...


class GraphGateway:
    """GraphPort over msgraph-sdk's GraphServiceClient; caches the SKU catalog for a short TTL."""

    def __init__(
        self,
        client: GraphServiceClient,
        *,
        catalog_ttl: float,
        http: httpx.AsyncClient | None = None,
        credential: Closable | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._client = client
        self._http = http
        self._credential = credential
        self._ttl = catalog_ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self._catalog: tuple[float, Catalog] | None = None
        self._catalog_read_at: datetime | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphGateway:
        """Build the client the settings ask for (managed identity, developer login, or emulator)."""
        client, http, credential = build_client(settings)
        return cls(client, catalog_ttl=settings.catalog_ttl_seconds, http=http, credential=credential)

    @property
    def client(self) -> GraphServiceClient:
        """The SDK client, for the rest of the Graph adapter (graph_subscriptions) only."""
        return self._client

    async def close(self) -> None:
        """Close the HTTP client and credential (they belong to the event loop that opened them)."""
        if self._http is not None:
            await self._http.aclose()
        if self._credential is not None:
            await self._credential.close()

    async def catalog(self, *, fresh: bool = False) -> Catalog:
        """The tenant's subscribed SKUs with seats (GET /subscribedSkus), cached for ``catalog_ttl``."""
        now = self._clock()
        if not fresh and self._catalog and now - self._catalog[0] < self._ttl:
            return self._catalog[1]
        page = await self._raw("read subscribedSkus", self._client.subscribed_skus.to_get_request_information())
        self._catalog = (now, Catalog(tuple(sku_from_json(item) for item in page.get("value") or [])))
        self._catalog_read_at = self._wall_clock()
        catalog_read(self._catalog[1])
        return self._catalog[1]

    @property
    def catalog_read_at(self) -> datetime | None:
        """When the cached catalog was read from Graph (UTC); None before the first read. Seat numbers are that old:
        the status page says so rather than passing cached numbers off as current."""
        return self._catalog_read_at

    async def get_user(self, user: str) -> UserFacts:
        """Read a user by object id or UPN with only the properties planning needs (parsed as plain JSON)."""
        config = RequestConfiguration(
            query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=USER_SELECT)
        )
        info = self._user(user).to_get_request_information(config)
        found = await self._raw(f"read user {user}", self._at(user, info))
        if not found.get("id"):
            raise UserNotFound(f"user {user} was not returned by Graph")
        return user_from_json(found)

    async def is_soft_deleted(self, user: str) -> bool:
        """Whether the user (by object id) is in Graph's deleted items: soft-deleted, restorable for 30 days.

        GET /directory/deletedItems/{id} (https://learn.microsoft.com/graph/api/directory-deleteditems-get;
        User.Read.All). Its 404 is False; a UPN is False without a call (deleted items are keyed by object id).
        """
        if not _is_object_id(user):
            return False
        query = DeletedItem.DirectoryObjectItemRequestBuilderGetQueryParameters(select=["id"])
        item = self._client.directory.deleted_items.by_directory_object_id(user)
        info = item.to_get_request_information(RequestConfiguration(query_parameters=query))
        try:
            found = await self._raw(f"read deleted item {user}", info)
        except UserNotFound:
            return False
        return bool(found.get("@odata.type", USER_TYPE) == USER_TYPE)  # deleted items also hold groups and apps

    def _user(self, user: str) -> UserItemRequestBuilder:
        """The SDK's builder for one user (a `$` UPN gets a placeholder that ``_at`` swaps for its key)."""
        return self._client.users.by_user_id(_SLOT if user.startswith("$") else user)

    def _at(self, user: str, info: RequestInformation) -> RequestInformation:
        """Address a user whose UPN starts with `$` as /users('$x@contoso.com'), on every user call.

        https://learn.microsoft.com/graph/api/user-get (note on `$` UPNs).
        """
        if user.startswith("$"):
            info.path_parameters["baseurl"] = self._client.request_adapter.base_url
            info.url = info.url.replace(f"/users/{_SLOT}", f"/users{odata_key(user)}", 1)
        return info

    async def _raw(self, what: str, info: RequestInformation) -> dict[str, Any]:
        """Send through the SDK's request adapter (auth, retry, errors) and parse the body with json."""
        raw = await call(what, self._client.request_adapter.send_primitive_async(info, "bytes", RAW_ERRORS))
        data: dict[str, Any] = json.loads(raw) if raw else {}
        return data

    async def set_usage_location(self, user_id: str, location: str) -> None:
        """PATCH the user's usageLocation (needs User.ReadWrite.All)."""
        info = self._user(user_id).to_patch_request_information(User(usage_location=location))
        await self._raw(f"set usageLocation of {user_id}", self._at(user_id, info))

    async def assign(self, user_id: str, add: Sequence[tuple[str, Iterable[str]]], remove: Sequence[str]) -> None:
        """POST assignLicense with the full desired disabled set per SKU (Graph replaces, never merges)."""
        body = AssignLicensePostRequestBody(
            add_licenses=[
                AssignedLicense(sku_id=uuid.UUID(sku), disabled_plans=[uuid.UUID(p) for p in sorted(plans)])
                for sku, plans in add
            ],
            remove_licenses=[uuid.UUID(s) for s in remove],  # Graph requires the key even when empty
        )
        info = self._user(user_id).assign_license.to_post_request_information(body)
        await self._raw(f"assign licenses to {user_id}", self._at(user_id, info))

    async def plan_states(self, user_id: str) -> tuple[ObservedLicense, ...]:
        """Every SKU's plans with provisioningStatus (ObservedLicense.source says from where).

        licenseDetails first (it works for delegated callers); when refused (403, as it is for application
        permissions) the user's assignedPlans joined with provisionedPlans (adapters.graph.fallback).
        """
        select = LicenseDetailsRequestBuilder.LicenseDetailsRequestBuilderGetQueryParameters(
            select=["skuId", "skuPartNumber", "servicePlans"]
        )
        config = RequestConfiguration(query_parameters=select)
        info = self._user(user_id).license_details.to_get_request_information(config)
        try:
            details = await self._raw(f"read licenseDetails of {user_id}", self._at(user_id, info))
        except AccessDenied:
            log.info("licenseDetails refused for %s; reading assignedPlans and provisionedPlans instead", user_id)
            query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=FALLBACK_SELECT)
            info = self._user(user_id).to_get_request_information(RequestConfiguration(query_parameters=query))
            user = await self._raw(f"read plans of {user_id}", self._at(user_id, info))
            if not user.get("id"):
                raise UserNotFound(f"user {user_id} was not returned by Graph") from None
            return observed_from_user_json(user, await self.catalog())
        return observed_from_json(details)


def _is_object_id(ref: str) -> bool:
    try:
        return str(uuid.UUID(ref)) == ref.lower()
    except ValueError:
        return False
