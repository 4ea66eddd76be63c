"""Change-notification subscriptions on users: the record, Graph's rules for creating and renewing one,
and the JSON Graph shows and sends for it. No HTTP (webhooks.py delivers, subscriptions_api.py serves).

Checked against Graph's docs and public captures: users support only ``updated`` and ``deleted`` (a user's
creation arrives as ``updated``) and live at most 41,760 minutes; "Invalid 'changeType' attribute: ...",
"The object was not found." (404 ResourceNotFound), the lifecycle payload and the change-notification
shape. The expiration refusals follow the wording Graph uses for Outlook resources ("Subscription
expiration can only be N minutes in the future.", ExtensionError); the past-expiration and
missing-property wordings are our best guess.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from licensing.dev.tenant.model import GraphError, new_id

MAX_USER_MINUTES = 41_760  # user, group and other directory resources: under 29 days
CHANGE_TYPES = ("created", "updated", "deleted")
USER_CHANGE_TYPES = frozenset({"updated", "deleted"})  # Graph refuses "created" on users
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
TLS_VERSIONS = frozenset({"v1_0", "v1_1", "v1_2", "v1_3"})
MAX_CLIENT_STATE = 128
# The emulator has no sign-in: every subscription is created by this app, acting as its service principal.
APPLICATION_ID = "3f9c1a8e-7d42-4c6b-9e51-0a2d6b8c4f17"
CREATOR_ID = "b7e2d4c1-5a3f-4e8b-a9c6-1d0f2e3b4a58"
INVALID = "InvalidRequest"


@dataclass(slots=True)
class Subscription:
    """One subscription on ``users`` (every user) or ``users/{id}`` (one user)."""

    id: str
    resource: str
    change_type: str
    notification_url: str
    lifecycle_notification_url: str | None
    client_state: str | None
    expiration: dt.datetime
    application_id: str = APPLICATION_ID
    creator_id: str = CREATOR_ID
    include_resource_data: bool = False
    latest_supported_tls_version: str = "v1_2"

    @property
    def change_types(self) -> frozenset[str]:
        """The change types asked for, lower-cased."""
        return frozenset(part.strip().lower() for part in self.change_type.split(","))

    @property
    def user_id(self) -> str | None:
        """The one user watched, or None for the whole ``users`` collection."""
        segments = [s for s in self.resource.strip("/").split("/") if s]
        return segments[1].lower() if len(segments) == 2 else None

    def covers(self, user_refs: set[str], change_type: str) -> bool:
        """True when a change of this type to the user known by these lower-case refs (id, UPN) is notified."""
        return change_type in self.change_types and (self.user_id is None or self.user_id in user_refs)


def new_subscription(body: Mapping[str, Any], now: dt.datetime) -> Subscription:
    """POST /subscriptions: the subscription the body asks for, or Graph's refusal (before any handshake)."""
    resource = _required(body, "resource")
    segments = [s for s in resource.strip("/").split("/") if s]
    if not segments or segments[0].lower() != "users" or len(segments) > 2 or "?" in resource:
        raise GraphError(
            400,
            INVALID,
            f"Resource '{resource}' is not supported by the emulated tenant: it serves subscriptions on "
            "'users' and 'users/{id}' only.",
        )
    change_type = _required(body, "changeType")
    for part in change_type.split(","):
        if part.strip().lower() not in USER_CHANGE_TYPES:
            raise GraphError(400, INVALID, f"Invalid 'changeType' attribute: '{part.strip()}'.")
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
        raise GraphError(400, INVALID, f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.")
    tls = body.get("latestSupportedTlsVersion") or "v1_2"
    if tls not in TLS_VERSIONS:
        raise GraphError(400, INVALID, f"Invalid 'latestSupportedTlsVersion' attribute: '{tls}'.")
    lifecycle = body.get("lifecycleNotificationUrl")
    if lifecycle is not None:
        lifecycle = loopback_url(_required(body, "lifecycleNotificationUrl"))
    return Subscription(
        id=new_id(),
        resource=resource,
        change_type=change_type,
        notification_url=loopback_url(_required(body, "notificationUrl")),
        lifecycle_notification_url=lifecycle,
        client_state=client_state,
        expiration=expiration(body, now, operation="creation"),
        include_resource_data=bool(body.get("includeResourceData", False)),
        latest_supported_tls_version=tls,
    )


def expiration(body: Mapping[str, Any], now: dt.datetime, *, operation: str) -> dt.datetime:
    """``expirationDateTime`` as UTC, in the future and at most 41,760 minutes ahead, or Graph's refusal."""
    text = body.get("expirationDateTime")
    if not isinstance(text, str) or not text:
        raise GraphError(400, INVALID, "expirationDateTime must be provided with the subscription.")
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise GraphError(
            400,
            INVALID,
            f"Could not process subscription {operation} payload. Are all property names spelled and camelCased "
            "properly?",
        ) from None
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    if moment <= now:
        raise GraphError(400, INVALID, "Subscription expiration must be in the future.")
    if moment > now + dt.timedelta(minutes=MAX_USER_MINUTES):
        raise GraphError(
            400, "ExtensionError", f"Subscription expiration can only be {MAX_USER_MINUTES} minutes in the future."
        )
    return moment


def loopback_url(url: str) -> str:
    """An http(s) URL on a loopback host: the emulator never calls out beyond this machine."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in {"http", "https"} or not loopback:
        raise GraphError(
            400,
            INVALID,
            f"The emulated tenant delivers notifications to http(s) URLs on loopback hosts only "
            f"(127.0.0.0/8, ::1, localhost), not '{url}'.",
        )
    return url


def not_found() -> GraphError:
    """Graph's 404 for a subscription id it does not know (or that has expired)."""
    return GraphError(404, "ResourceNotFound", "The object was not found.")


def graph_time(moment: dt.datetime) -> str:
    """A UTC timestamp as Graph's subscription service writes it: seven fractional digits and ``Z``."""
    utc = moment.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def render(sub: Subscription) -> dict[str, Any]:
    """A subscription as GET / POST / PATCH /subscriptions return it (without @odata.context)."""
    return {
        "id": sub.id,
        "resource": sub.resource,
        "applicationId": sub.application_id,
        "changeType": sub.change_type,
        "clientState": sub.client_state,
        "notificationUrl": sub.notification_url,
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": sub.lifecycle_notification_url,
        "expirationDateTime": graph_time(sub.expiration),
        "creatorId": sub.creator_id,
        "includeResourceData": sub.include_resource_data,
        "latestSupportedTlsVersion": sub.latest_supported_tls_version,
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationUrlAppId": None,
    }


def change_notification(sub: Subscription, user_id: str, change_type: str, tenant_id: str) -> dict[str, Any]:
    """The changeNotificationCollection Graph POSTs to notificationUrl for one changed user."""
    item = {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": graph_time(sub.expiration),
        "changeType": change_type,
        "resource": f"Users/{user_id}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user_id}", "id": user_id},
        "clientState": sub.client_state,
        "tenantId": tenant_id,
    }
    return {"value": [item]}


def lifecycle_notification(sub: Subscription, event: str, tenant_id: str) -> dict[str, Any]:
    """The lifecycle notification Graph POSTs to lifecycleNotificationUrl."""
    item = {
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": graph_time(sub.expiration),
        "tenantId": tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }
    return {"value": [item]}


def _required(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise GraphError(400, INVALID, f"{name} must be provided with the subscription.")
    return value.strip()
