"""Graph change-notification subscriptions (part of the Graph adapter: same client, same error translation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from msgraph.generated.models.subscription import Subscription

from licensing.adapters.graph.errors import call
from licensing.adapters.graph.gateway import GraphGateway


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """One subscription as Graph lists it."""

    id: str
    resource: str
    change_type: str
    notification_url: str
    expiration: datetime


class SubscriptionGateway:
    """POST / GET / PATCH /subscriptions and /reauthorize, through the app's GraphServiceClient."""

    def __init__(self, graph: GraphGateway) -> None:
        self._client = graph.client

    async def list(self) -> list[SubscriptionInfo]:
        """The app's subscriptions (Graph lists only those this app created)."""
        result = await call("list subscriptions", self._client.subscriptions.get())
        return [_info(s) for s in (result.value if result else None) or []]

    async def create(
        self, *, notification_url: str, lifecycle_url: str | None, client_state: str, expiration: datetime
    ) -> SubscriptionInfo:
        """Subscribe to user changes; Graph validates the URL with a handshake before answering."""
        body = Subscription(
            change_type="updated,deleted",  # users have no "created": a new user arrives as "updated"
            resource="users",
            notification_url=notification_url,
            lifecycle_notification_url=lifecycle_url,
            client_state=client_state,
            expiration_date_time=expiration,
        )
        return _info(await call("create the users subscription", self._client.subscriptions.post(body)))

    async def renew(self, subscription_id: str, expiration: datetime) -> SubscriptionInfo:
        """PATCH a new expirationDateTime."""
        builder = self._client.subscriptions.by_subscription_id(subscription_id)
        body = Subscription(expiration_date_time=expiration)
        return _info(await call(f"renew subscription {subscription_id}", builder.patch(body)))

    async def reauthorize(self, subscription_id: str) -> None:
        """Answer a reauthorizationRequired lifecycle event."""
        builder = self._client.subscriptions.by_subscription_id(subscription_id)
        await call(f"reauthorize subscription {subscription_id}", builder.reauthorize.post())


def _info(s: Any) -> SubscriptionInfo:  # noqa: ANN401  # msgraph's Subscription
    return SubscriptionInfo(
        id=str(s.id),
        resource=s.resource or "",
        change_type=s.change_type or "",
        notification_url=s.notification_url or "",
        expiration=s.expiration_date_time,
    )
