"""Keep the Graph users subscription alive: create it when missing, renew before it expires, answer lifecycle events."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Literal

from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.graph.subscriptions import SubscriptionGateway
from licensing.services.context import Services
from licensing.services.notifications import same_secret
from licensing.services.reply import Reply

log = logging.getLogger(__name__)
MAX_USER_SUBSCRIPTION = timedelta(minutes=41_760)  # Graph's limit for users (just under 29 days)
LIFETIME = MAX_USER_SUBSCRIPTION - timedelta(hours=1)  # an hour of margin for clock skew
RENEW_WHEN_LEFT = timedelta(days=3)  # the timer runs hourly, so many chances before expiry
Kept = Literal["created", "renewed", "ok", "not-configured"]


def _gateway(services: Services) -> SubscriptionGateway:
    if not isinstance(services.graph, GraphGateway):
        raise TypeError("subscriptions need the real Graph gateway")
    return SubscriptionGateway(services.graph)


async def keep_alive(services: Services, *, now: datetime) -> Kept:
    """Ensure one live users subscription pointing at GRAPH_NOTIFICATION_URL (idempotent)."""
    settings = services.settings
    if not settings.graph_notification_url or not settings.graph_client_state:
        return "not-configured"
    gateway = _gateway(services)
    ours = [
        s
        for s in await gateway.list()
        if s.notification_url == settings.graph_notification_url and s.resource.strip("/").lower() == "users"
    ]
    if not ours:
        created = await gateway.create(
            notification_url=settings.graph_notification_url,
            lifecycle_url=settings.graph_lifecycle_url,
            client_state=settings.graph_client_state,
            expiration=now + LIFETIME,
        )
        log.info("created users subscription %s (expires %s)", created.id, created.expiration.isoformat())
        return "created"
    latest = max(ours, key=lambda s: s.expiration)
    if latest.expiration - now < RENEW_WHEN_LEFT:
        renewed = await gateway.renew(latest.id, now + LIFETIME)
        log.info("renewed users subscription %s until %s", renewed.id, renewed.expiration.isoformat())
        return "renewed"
    return "ok"


async def receive_lifecycle(body: bytes, services: Services, *, now: datetime) -> Reply:
    """reauthorizationRequired -> reauthorize and renew; subscriptionRemoved -> create again; missed -> log."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return Reply(400, {"error": 'not a Graph lifecycle notification: expected {"value": [...]}'})
    expected = services.settings.graph_client_state or ""
    handled = 0
    for item in items:
        given = item.get("clientState") if isinstance(item, dict) else None
        if not expected or not isinstance(given, str) or not same_secret(given, expected):
            log.warning("ignored a lifecycle notification with a wrong clientState")
            continue
        event, subscription_id = item.get("lifecycleEvent"), str(item.get("subscriptionId", ""))
        if event == "reauthorizationRequired":
            gateway = _gateway(services)
            await gateway.reauthorize(subscription_id)
            await gateway.renew(subscription_id, now + LIFETIME)
        elif event == "subscriptionRemoved":
            await keep_alive(services, now=now)
        else:  # "missed": Graph sends none for users; the nightly sweep is the safety net anyway
            log.warning("lifecycle event %s for subscription %s", event, subscription_id)
        handled += 1
    return Reply(202, {"handled": handled})
