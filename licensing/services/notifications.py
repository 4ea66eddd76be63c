"""Graph change notifications for users: validation handshake, scope checks, one request per user, acked in time."""

from __future__ import annotations

import asyncio
import logging
import unicodedata
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from licensing.core.errors import TransientError
from licensing.core.messages import UnreadableJson, load_json
from licensing.core.notifications import Changes, batch_items, read_changes
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.services.context import Services
from licensing.services.reply import Reply, error

log = logging.getLogger(__name__)
MAX_NOTIFICATION_BYTES = 1024 * 1024  # a full batch of user notifications is ~600 KiB
SEND_CONCURRENCY = 32  # queue sends in flight per POST: 1,000 users queue in well under a second
DEADLINE_SECONDS = 2.0  # Graph wants a 2xx within 3 s: no send starts after this; the rest is redelivered after a 503
# Sends already under way get this much longer: one cut off mid-flight may have reached the queue, and then the
# redelivery queues it again (harmless, see below, but a Graph read).
SEND_GRACE_SECONDS = 0.5
RETRY_AFTER_SECONDS = 5
MAX_VALIDATION_TOKEN = 1024  # Graph's token is opaque text, far shorter than this
NOSNIFF = {"X-Content-Type-Options": "nosniff"}  # the echoed token is never sniffed into HTML by a browser
# The same notification again within this window is not queued twice. Kept per process, in memory: a duplicate
# costs no license change (onboarding takes a per-user lease, skips the echo of its own writes and writes only what
# the policy changes), only a Graph read, so this saves redeliveries' reads; a storage-backed record would spend a
# write per item of Graph's 3 s and need cleaning up. Short, because an identical item without Graph's own id may
# be a second real change of that user: one that waits for the nightly sweep, as inside onboarding's echo window.
REPLAY_WINDOW_SECONDS = 120.0
REPLAY_MEMORY = 20_000
refused_items = 0  # per worker, for the log line: items from outside our scope are dropped, never acted on


def validation_reply(params: Mapping[str, str]) -> Reply | None:
    """Graph's handshake: echo ?validationToken as text/plain within 10 s (no body parsing, no storage)."""
    token = params.get("validationToken")
    if token is None:
        return None
    if len(token) > MAX_VALIDATION_TOKEN or any(unicodedata.category(c) == "Cc" for c in token):
        problem = f"validationToken must be at most {MAX_VALIDATION_TOKEN:,} characters without control characters"
        return Reply(400, {"error": problem}, headers=NOSNIFF)
    return Reply(200, token, "text/plain", headers=NOSNIFF)


class RecentlyQueued:
    """Replay keys queued in the last REPLAY_WINDOW_SECONDS (oldest forgotten first past REPLAY_MEMORY)."""

    def __init__(self) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str, now: float) -> bool:
        """Whether this key was queued inside the window."""
        return self._until.get(key, 0.0) > now

    def add(self, keys: Iterable[str], now: float) -> None:
        """Remember keys just queued."""
        for key in keys:
            self._until[key] = now + REPLAY_WINDOW_SECONDS
            self._until.move_to_end(key)
        while len(self._until) > REPLAY_MEMORY:
            self._until.popitem(last=False)


# One memory per storage account object, so a rebuilt composition root (tests, a new event loop) starts afresh.
_recent: weakref.WeakKeyDictionary[object, RecentlyQueued] = weakref.WeakKeyDictionary()


async def receive_notifications(params: Mapping[str, str], body: bytes, services: Services) -> Reply:
    """Enqueue an onboarding request per changed user: 202 within Graph's 3 s, or 503 for Graph to redeliver."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    if (handshake := validation_reply(params)) is not None:
        return handshake
    items = _batch(body)
    if isinstance(items, Reply):
        return items
    # The subscriptions module loads the Graph SDK, which the validation handshake (sharing this module) must not.
    from licensing.services.subscriptions import scope_of  # noqa: PLC0415

    try:  # one storage read; a hung one must not hold Graph's answer past the deadline either
        scope = await asyncio.wait_for(scope_of(services), timeout=max(0.0, deadline - loop.time()))
    except TimeoutError:
        raise TransientError("storage did not answer in time to check the notification's subscription") from None
    changes = read_changes(items, scope)
    _note_refused(changes)
    recent = _recent.setdefault(services.storage, RecentlyQueued())
    fresh = {u: keys for u, keys in changes.users.items() if not all(recent.seen(k, loop.time()) for k in keys)}
    queued = await _enqueue(fresh, services, deadline)
    for user in queued:
        recent.add(fresh[user], loop.time())
    answer = {
        "queued": len(queued),
        "duplicates": len(changes.users) - len(fresh),
        "clientStateMismatches": changes.mismatched,
        "foreign": changes.foreign,
        "ignored": changes.ignored,
    }
    if len(queued) == len(fresh):
        return Reply(202, answer)
    # Graph redelivers the whole batch: what was queued is then a duplicate, the rest is queued then.
    retry = {**answer, "error": "not every change could be queued in time; retry", "retry": len(fresh) - len(queued)}
    return Reply(503, retry, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _batch(body: bytes) -> list[Any] | Reply:
    """The items of the batch, or the 4xx answer saying why there are none."""
    if len(body) > MAX_NOTIFICATION_BYTES:
        return error(413, f"notification batch is {len(body):,} bytes; the limit is {MAX_NOTIFICATION_BYTES:,}")
    try:
        return batch_items(load_json(body))
    except UnreadableJson as exc:
        return error(400, f"not a Graph notification: not valid JSON ({exc})")
    except OverflowError as exc:
        return error(413, str(exc))
    except TypeError as exc:
        return error(400, f"not a Graph notification: {exc}")


async def _enqueue(users: Mapping[str, Any], services: Services, deadline: float) -> list[str]:
    """Send one request per user, SEND_CONCURRENCY at a time, none started after the deadline; the users queued."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(user: str) -> None:
        async with gate:
            if loop.time() >= deadline:
                raise TimeoutError  # not sent: Graph's redelivery will
            request_id = f"graph-{user}-{uuid.uuid4().hex[:12]}"
            message = {"user": user, "source": "graph", "requestId": request_id}
            await services.storage.send(LICENSE_REQUESTS_QUEUE, message)

    tasks = {user: asyncio.ensure_future(one(user)) for user in users}
    if not tasks:
        return []
    # The storage SDK retries a dead service for over a minute: answer in time and let Graph's redelivery finish.
    _, late = await asyncio.wait(tasks.values(), timeout=max(0.0, deadline + SEND_GRACE_SECONDS - loop.time()))
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)
    queued = []
    for user, task in tasks.items():
        failure = None if task.cancelled() else task.exception()
        if not task.cancelled() and failure is None:
            queued.append(user)
        elif failure is not None and not isinstance(failure, TransientError | TimeoutError):
            log.error("queueing a Graph notification failed: %s", type(failure).__name__)
    return queued


def _note_refused(changes: Changes) -> None:
    global refused_items  # noqa: PLW0603  # a process-wide counter, like a metric
    if changes.mismatched or changes.foreign:
        refused_items += changes.mismatched + changes.foreign
        log.warning(
            "ignored %d notification(s) with a wrong clientState and %d from another tenant or subscription "
            "(%d since start)",
            changes.mismatched,
            changes.foreign,
            refused_items,
        )
