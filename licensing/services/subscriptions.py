"""Keep the Graph users subscription alive: create it when missing, renew before it expires, answer lifecycle events."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from azure.core.exceptions import ResourceNotFoundError

from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.graph.subscriptions import SubscriptionGateway, SubscriptionInfo
from licensing.adapters.storage.account import RUNS_TABLE, Storage, transient
from licensing.core.messages import UnreadableJson, load_json
from licensing.core.notifications import Scope
from licensing.services.context import Services
from licensing.services.notifications import MAX_NOTIFICATION_BYTES
from licensing.services.reply import Reply, error

log = logging.getLogger(__name__)
MAX_USER_SUBSCRIPTION = timedelta(minutes=41_760)  # Graph's limit for users (just under 29 days)
LIFETIME = MAX_USER_SUBSCRIPTION - timedelta(hours=1)  # an hour of margin for clock skew
RENEW_WHEN_LEFT = timedelta(days=3)  # the timer runs hourly, so many chances before expiry
Kept = Literal["created", "renewed", "ok", "not-configured"]
SUBSCRIPTIONS_PARTITION = "subscriptions"  # SweepRuns rows: one per users subscription of ours, RowKey = its id
# SweepRuns "state" partition: the expiry of the users subscription as keep_alive last created, renewed or saw it
# (the status page shows it without asking Graph)
EXPIRY_KEY = {"PartitionKey": "state", "RowKey": "users-subscription"}
_tenant_unchecked_noted = False


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
    # Notifications are accepted only for the subscriptions Graph lists as ours: recorded on every run, so a
    # subscription made before this record existed, or removed by Graph, is known (or forgotten) within the hour.
    if not ours:
        created = await gateway.create(
            notification_url=settings.graph_notification_url,
            lifecycle_url=settings.graph_lifecycle_url,
            client_state=settings.graph_client_state,
            expiration=now + LIFETIME,
        )
        await remember_subscriptions(services, [created.id])
        await remember_expiry(services.storage, created, now=now)
        log.info("created users subscription %s (expires %s)", created.id, created.expiration.isoformat())
        return "created"
    await remember_subscriptions(services, [s.id for s in ours])
    latest = max(ours, key=lambda s: s.expiration)
    if latest.expiration - now < RENEW_WHEN_LEFT:
        renewed = await gateway.renew(latest.id, now + LIFETIME)
        await remember_expiry(services.storage, renewed, now=now)
        log.info("renewed users subscription %s until %s", renewed.id, renewed.expiration.isoformat())
        return "renewed"
    await remember_expiry(services.storage, latest, now=now)
    return "ok"


async def receive_lifecycle(body: bytes, services: Services, *, now: datetime) -> Reply:
    """reauthorizationRequired -> reauthorize and renew; subscriptionRemoved -> create again; missed -> log."""
    not_lifecycle = 'not a Graph lifecycle notification: expected {"value": [...]}'
    if len(body) > MAX_NOTIFICATION_BYTES:
        return error(413, f"lifecycle notification is {len(body):,} bytes; the limit is {MAX_NOTIFICATION_BYTES:,}")
    try:
        payload = load_json(body)
    except UnreadableJson as exc:
        return error(400, f"{not_lifecycle} (not valid JSON: {exc})")
    items = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return error(400, not_lifecycle)
    scope = await scope_of(services)
    handled = 0
    for item in items:
        why = scope.refuses(item) if isinstance(item, dict) else "shape"
        if why is not None:
            log.warning("ignored a lifecycle notification (%s does not match)", why)
            continue
        event, subscription_id = item.get("lifecycleEvent"), str(item.get("subscriptionId", ""))
        if event == "reauthorizationRequired":
            gateway = _gateway(services)
            await gateway.reauthorize(subscription_id)
            await remember_expiry(services.storage, await gateway.renew(subscription_id, now + LIFETIME), now=now)
        elif event == "subscriptionRemoved":
            await keep_alive(services, now=now)
        else:  # "missed": Graph sends none for users; the nightly sweep is the safety net anyway
            log.warning("lifecycle event %s for subscription %s", str(event)[:64], subscription_id[:64])
        handled += 1
    return Reply(202, {"handled": handled})


async def scope_of(services: Services) -> Scope:
    """What a notification must match: the clientState, LICENSING_TENANT_ID and our recorded subscriptions."""
    global _tenant_unchecked_noted  # noqa: PLW0603  # log once per worker, not per POST
    settings = services.settings
    if settings.tenant_id is None and not _tenant_unchecked_noted:
        _tenant_unchecked_noted = True
        log.warning("LICENSING_TENANT_ID is not set: Graph notifications are not checked for the tenant they name")
    return Scope(settings.graph_client_state, settings.tenant_id, await known_subscriptions(services))


async def known_subscriptions(services: Services) -> frozenset[str] | None:
    """Ids of our users subscriptions; None before the timer has recorded any (then there is nothing to check)."""
    rows = services.storage.table(RUNS_TABLE).query_entities(
        "PartitionKey eq @p", parameters={"p": SUBSCRIPTIONS_PARTITION}, select=["RowKey"]
    )
    with transient("read the Graph subscriptions"):
        ids = frozenset([row["RowKey"] async for row in rows])
    return ids or None


async def remember_subscriptions(services: Services, ids: Iterable[str]) -> None:
    """Record exactly these subscription ids as ours: new ones first, then the ones Graph no longer lists removed."""
    table = services.storage.table(RUNS_TABLE)
    keep = set(ids)
    with transient("record the Graph subscriptions"):
        for subscription_id in keep:
            await table.upsert_entity({"PartitionKey": SUBSCRIPTIONS_PARTITION, "RowKey": subscription_id})
        for stale in (await known_subscriptions(services) or frozenset()) - keep:
            await table.delete_entity(SUBSCRIPTIONS_PARTITION, stale)


async def remember_expiry(storage: Storage, subscription: SubscriptionInfo, *, now: datetime) -> None:
    """Record when the users subscription expires (and when that was checked), for the status page."""
    row = {**EXPIRY_KEY, "SubscriptionId": subscription.id, "ExpiresAt": subscription.expiration, "CheckedAt": now}
    with transient("record the Graph subscription's expiry"):
        await storage.table(RUNS_TABLE).upsert_entity(row)


async def recorded_expiry(storage: Storage) -> datetime | None:
    """When the users subscription expires, as keep_alive last recorded it; None before it ever ran."""
    with transient("read the Graph subscription's expiry"):
        try:
            row = await storage.table(RUNS_TABLE).get_entity(EXPIRY_KEY["PartitionKey"], EXPIRY_KEY["RowKey"])
        except ResourceNotFoundError:
            return None
    expires: datetime | None = row.get("ExpiresAt")
    return expires
