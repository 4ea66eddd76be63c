"""Graph's side of webhooks: the validation handshake, change notifications and lifecycle notifications.

One aiohttp ClientSession per tenant, opened on first use and closed with the tenant. It never follows
redirects and every target was checked to be loopback when its subscription was created or changed.

Checked against Graph's docs and public captures: the handshake POSTs ``?validationToken=`` with
``Content-Type: text/plain`` and wants 200, ``text/plain`` and the decoded token back within 10 s; the
refusals read "Subscription validation request failed. HTTP status code is 'Forbidden'. Notification
endpoint must respond with 200 OK to validation request.", "... Response must exactly match
validationToken query parameter." and "Subscription validation request timed out.". Graph also
validates on renewal and reauthorization. Notifications go out with a 3 s timeout and, unlike Graph,
are not retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http
import json
import logging
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from licensing.dev.tenant.model import GraphError, new_id
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.subscriptions import (
    CHANGE_TYPES,
    LIFECYCLE_EVENTS,
    Subscription,
    change_notification,
    lifecycle_notification,
    not_found,
)

log = logging.getLogger(__name__)
VALIDATION_ERROR = "ValidationError"
_MUST_ANSWER_200 = "Notification endpoint must respond with 200 OK to validation request."


class Delivery(NamedTuple):
    """One POST to a subscriber: where, and the HTTP status it answered (None: no answer, refused or timed out)."""

    url: str
    status: int | None


class Webhooks:
    """Outgoing calls to subscribers of one tenant's change notifications."""

    def __init__(self, state: TenantState, *, validation_timeout: float = 10.0, delivery_timeout: float = 3.0) -> None:
        self.state = state
        self.validation_timeout = validation_timeout
        self.delivery_timeout = delivery_timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        state.notifier = self._notify_soon  # the tenant's own notifications (a deleted user) go out here

    # --- subscriptions ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The tenant's clock as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.state.clock(), dt.UTC)

    def live(self) -> list[Subscription]:
        """Subscriptions not yet expired; expired ones are dropped, as Graph deletes them."""
        now = self.now()
        for gone in [s.id for s in self.state.subscriptions.values() if s.expiration <= now]:
            del self.state.subscriptions[gone]
        return list(self.state.subscriptions.values())

    def find(self, subscription_id: str) -> Subscription:
        """A live subscription by id, or Graph's 404."""
        found = next((s for s in self.live() if s.id == subscription_id.lower()), None)
        if found is None:
            raise not_found()
        return found

    # --- validation handshake --------------------------------------------------------------------

    async def validate(self, url: str) -> None:
        """POST ``url?validationToken=...`` and insist on 200, text/plain and the token echoed, like Graph."""
        token = f"Validation: Testing client application reachability for subscription Request-Id: {new_id()}"
        separator = "&" if urlsplit(url).query else "?"
        target = URL(f"{url}{separator}validationToken={quote(token, safe='')}", encoded=True)
        try:
            async with self._client().post(
                target,
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.validation_timeout),
                allow_redirects=False,
            ) as response:
                status, media, echoed = response.status, response.content_type, await response.read()
        except TimeoutError:
            raise GraphError(400, VALIDATION_ERROR, "Subscription validation request timed out.") from None
        except aiohttp.ClientError:
            raise GraphError(
                400, VALIDATION_ERROR, f"Subscription validation request failed. {_MUST_ANSWER_200}"
            ) from None
        if status != 200:
            raise GraphError(
                400,
                VALIDATION_ERROR,
                f"Subscription validation request failed. HTTP status code is '{_status_name(status)}'. "
                f"{_MUST_ANSWER_200}",
            )
        if media != "text/plain" or echoed.decode("utf-8", "replace") != token:
            raise GraphError(
                400,
                VALIDATION_ERROR,
                "Subscription validation request failed. Response must exactly match validationToken query parameter.",
            )

    # --- notifications ---------------------------------------------------------------------------

    async def notify_user_changed(self, user_id: str, change_type: str = "updated") -> list[Delivery]:
        """POST a change notification for one user to every live subscription asking for this change type.

        ``user_id`` is an object id or UPN of an existing or soft-deleted user (any id for ``deleted``).
        Entra reports a user's creation and soft deletion as ``updated``: subscriptions on users cannot
        ask for ``created``.
        """
        if change_type not in CHANGE_TYPES:
            raise ValueError(f"change_type must be one of {', '.join(CHANGE_TYPES)}, not {change_type!r}")
        user = self.state.find_user(user_id) or self.state.deleted_users.get(user_id.lower())
        if user is None and change_type != "deleted":
            user = self.state.user(user_id)  # Graph's 404
        object_id = user.id if user is not None else user_id.lower()
        refs = {object_id, user.user_principal_name.lower()} if user is not None else {object_id}
        targets = [s for s in self.live() if s.covers(refs, change_type)]
        tenant_id = self.state.tenant_id
        posts = [
            self._post(s.notification_url, change_notification(s, object_id, change_type, tenant_id)) for s in targets
        ]
        return list(await asyncio.gather(*posts))

    async def send_lifecycle(self, subscription_id: str, event: str = "reauthorizationRequired") -> list[Delivery]:
        """POST a lifecycle notification to the subscription's lifecycleNotificationUrl (none without one).

        ``subscriptionRemoved`` also removes the subscription, as Graph has when it sends that event.
        """
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"event must be one of {', '.join(LIFECYCLE_EVENTS)}, not {event!r}")
        sub = self.find(subscription_id)
        if event == "subscriptionRemoved":
            del self.state.subscriptions[sub.id]
        if sub.lifecycle_notification_url is None:
            return []
        return [
            await self._post(sub.lifecycle_notification_url, lifecycle_notification(sub, event, self.state.tenant_id))
        ]

    def notify_in_background(self, user_id: str, change_type: str = "updated") -> None:
        """Schedule notify_user_changed on the running loop, as Entra notifies after a change is committed."""
        task = asyncio.get_running_loop().create_task(self._notify_quietly(user_id, change_type))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify_soon(self, user_id: str, change_type: str) -> None:
        """notify_in_background when an event loop runs (the emulator serving); otherwise nobody listens."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            log.debug("no running loop: %s of user %s not notified", change_type, user_id)
            return
        self.notify_in_background(user_id, change_type)

    async def drain(self) -> None:
        """Wait until every background notification has been delivered (or has failed)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Finish background notifications, then close the HTTP session."""
        await self.drain()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- HTTP ------------------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()  # trust_env stays False: never through a proxy
        return self._session

    async def _post(self, url: str, payload: dict[str, Any]) -> Delivery:
        try:
            async with self._client().post(
                url,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.delivery_timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                return Delivery(url, response.status)
        except (TimeoutError, aiohttp.ClientError):
            return Delivery(url, None)

    async def _notify_quietly(self, user_id: str, change_type: str) -> None:
        try:
            deliveries = await self.notify_user_changed(user_id, change_type)
        except (GraphError, ValueError):
            log.warning("background notification for user %s not sent", user_id, exc_info=True)
        else:
            log.debug("background notification for user %s: %s", user_id, deliveries)


def _status_name(status: int) -> str:
    """The .NET name Graph quotes for an HTTP status: 403 -> 'Forbidden', 500 -> 'InternalServerError'."""
    try:
        return http.HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return str(status)
