"""A small local stand-in for the Functions host: drives the queue functions registered in function_app.py.

It follows the host's queue semantics from host.json (base64 messages, batchSize, dequeue count, a failed
message becomes visible again after visibilityTimeout, and moves to ``<queue>-poison`` once it has been
dequeued maxDequeueCount times). It is a dev tool for the demo and end-to-end tests, not deployed; in Azure
the real host does this.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from licensing.settings import APP_ROOT

log = logging.getLogger(__name__)
QueueFunction = Callable[[func.QueueMessage], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class QueueBinding:
    """One queue-triggered function."""

    function_name: str
    queue_name: str
    function: QueueFunction


@dataclass
class HostStats:
    """What the host did, per function."""

    succeeded: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    poisoned: dict[str, int] = field(default_factory=dict)


_indexed: dict[int, tuple[func.FunctionApp, list[Any]]] = {}


def indexed_functions(app: func.FunctionApp) -> list[Any]:
    """``app.get_functions()`` once per app object (a second call raises), as the worker indexes them."""
    if id(app) not in _indexed:
        _indexed[id(app)] = (app, app.get_functions())
    return _indexed[id(app)][1]


def user_function(app: func.FunctionApp, name: str) -> Callable[..., Awaitable[Any]]:
    """The registered Python function behind a function name."""
    for fn in indexed_functions(app):
        if fn.get_function_name() == name:
            found: Callable[..., Awaitable[Any]] = fn.get_user_function()
            return found
    raise KeyError(f"no function named {name!r} is registered")


def queue_bindings(app: func.FunctionApp) -> list[QueueBinding]:
    """The queue triggers of an app."""
    found = []
    for fn in indexed_functions(app):
        trigger = fn.get_trigger()
        if trigger is not None and trigger.get_dict_repr()["type"] == "queueTrigger":
            queue = trigger.get_dict_repr()["queueName"]
            found.append(QueueBinding(fn.get_function_name() or "", queue, fn.get_user_function()))
    return found


def local_settings(storage_connection: str, graph_url: str) -> dict[str, str]:
    """App settings for running locally against Azurite and the emulated tenant, with delays short enough
    that a pending plan settles in seconds (the demo and the tests use these)."""
    return {
        "AzureWebJobsStorage": storage_connection,
        "LICENSING_GRAPH_URL": graph_url,
        "LICENSING_GRAPH_AUTH": "none",
        "LICENSING_POLICY_PATH": str(APP_ROOT / "licensing-policy.json"),
        "LICENSING_GRAPH_RETRY_DELAY_SECONDS": "0",
        "LICENSING_VERIFY_DELAY_SECONDS": "1",
        "LICENSING_VERIFY_MAX_BACKOFF_SECONDS": "2",
        "LICENSING_BLOCKED_RETRY_SECONDS": "1",
        "LICENSING_BLOCKED_MAX_ATTEMPTS": "2",
        "LICENSING_NOT_FOUND_RETRY_SECONDS": "1",
        "LICENSING_NOT_FOUND_MAX_ATTEMPTS": "2",
    }


def _duration(text: str) -> float:
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


class LocalHost:
    """Polls Azurite queues and invokes the registered functions like the Functions host would."""

    def __init__(
        self,
        app: func.FunctionApp,
        connection_string: str,
        *,
        host_json: Path = APP_ROOT / "host.json",
        retry_visibility: float | None = None,
        poll_interval: float = 0.1,
        lease_seconds: int = 300,
    ) -> None:
        config: dict[str, Any] = json.loads(host_json.read_text())["extensions"]["queues"]
        self.max_dequeue_count = int(config.get("maxDequeueCount", 5))
        self.batch_size = int(config.get("batchSize", 16))
        # Like the host: fetch the next batch once the messages still running drop to this many.
        self.new_batch_threshold = int(config.get("newBatchThreshold", self.batch_size // 2))
        host_visibility = _duration(config.get("visibilityTimeout", "00:00:00"))
        self.retry_visibility = host_visibility if retry_visibility is None else retry_visibility
        self.base64 = config.get("messageEncoding", "base64") == "base64"
        self.bindings = queue_bindings(app)
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds  # how long a received message stays invisible while it runs
        self.storage_errors = 0
        self.stats = HostStats()
        self._service = QueueServiceClient.from_connection_string(connection_string)

    def _queue(self, name: str) -> QueueClient:
        return self._service.get_queue_client(name)

    async def _receive(self, queue: QueueClient) -> list[Any]:
        """Up to batchSize messages, each invisible for the lease while it runs.

        ``max_messages`` bounds what the pager fetches: without it the pager asks for another page after a short
        one, and breaking out at batchSize would leave the rest of that page received (invisible for the whole
        lease) but never run.
        """
        pager = queue.receive_messages(
            messages_per_page=self.batch_size, max_messages=self.batch_size, visibility_timeout=self.lease_seconds
        )
        return [message async for message in pager]

    async def poll_once(self) -> int:
        """Receive one batch per queue and run it concurrently; returns how many messages ran."""
        ran = 0
        for binding in self.bindings:
            queue = self._queue(binding.queue_name)
            batch = await self._receive(queue)
            await asyncio.gather(*(self._invoke(binding, queue, m) for m in batch))
            ran += len(batch)
        return ran

    async def _invoke(self, binding: QueueBinding, queue: QueueClient, message: Any) -> None:  # noqa: ANN401
        try:
            await self._run(binding, queue, message)
        except (AzureError, OSError) as exc:
            # Storage went away while completing or abandoning: like the real host, leave the message to
            # reappear when its lease runs out rather than crash the poller.
            self.storage_errors += 1
            log.warning("storage error around message %s: %s", message.id, type(exc).__name__)

    async def _run(self, binding: QueueBinding, queue: QueueClient, message: Any) -> None:  # noqa: ANN401
        name = binding.function_name
        try:
            body = base64.b64decode(message.content, validate=True) if self.base64 else message.content.encode()
            await binding.function(
                QueueMessage(  # type: ignore[no-untyped-call]  # azure-functions ships this class untyped
                    id=message.id,
                    body=body,
                    dequeue_count=message.dequeue_count,
                    pop_receipt=message.pop_receipt,
                    insertion_time=message.inserted_on,
                    expiration_time=message.expires_on,
                )
            )
        except Exception as exc:  # the host catches whatever a function raises
            self.stats.failed[name] = self.stats.failed.get(name, 0) + 1
            log.warning(
                "function %s failed on message %s (delivery %s): %s", name, message.id, message.dequeue_count, exc
            )
            if message.dequeue_count >= self.max_dequeue_count:
                poison = self._queue(f"{binding.queue_name}-poison")
                await _create(poison)
                await poison.send_message(message.content)
                await queue.delete_message(message)
                self.stats.poisoned[name] = self.stats.poisoned.get(name, 0) + 1
            else:
                await queue.update_message(message, visibility_timeout=int(self.retry_visibility))
            return
        await queue.delete_message(message)
        self.stats.succeeded[name] = self.stats.succeeded.get(name, 0) + 1

    async def pending(self) -> int:
        """Messages still on our queues, visible or not (Azurite counts invisible ones too)."""
        total = 0
        for binding in self.bindings:
            queue = self._queue(binding.queue_name)
            await _create(queue)
            total += (await queue.get_queue_properties()).approximate_message_count or 0
        return total

    async def run_until_idle(self, *, limit_seconds: float = 120.0) -> HostStats:
        """Process messages until every bound queue is empty (delayed messages included).

        Each queue gets a new batch whenever its running messages drop to newBatchThreshold, as the
        Functions host does, so one slow message does not hold up the next batch.
        """
        deadline = time.monotonic() + limit_seconds
        running: dict[str, set[asyncio.Task[None]]] = {b.queue_name: set() for b in self.bindings}
        try:
            while True:
                started = 0
                try:
                    for binding in self.bindings:
                        started += await self._refill(binding, running[binding.queue_name])
                    busy = any(running.values())
                    idle = not started and not busy and await self.pending() == 0
                except (AzureError, OSError) as exc:  # storage restarting: keep polling, as the host does
                    self.storage_errors += 1
                    log.warning("storage unavailable while polling: %s", type(exc).__name__)
                    started, idle = 0, False
                if idle:
                    return self.stats
                if time.monotonic() > deadline:
                    raise TimeoutError(f"queues not idle after {limit_seconds:.0f} s")
                if not started:
                    tasks = set().union(*running.values())
                    if tasks:
                        await asyncio.wait(tasks, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
                    else:
                        await asyncio.sleep(self.poll_interval)
        finally:
            leftover = set().union(*running.values())
            if leftover:
                await asyncio.gather(*leftover, return_exceptions=True)

    async def _refill(self, binding: QueueBinding, running: set[asyncio.Task[None]]) -> int:
        if len(running) > self.new_batch_threshold:
            return 0
        queue = self._queue(binding.queue_name)
        batch = await self._receive(queue)
        for message in batch:
            task = asyncio.ensure_future(self._invoke(binding, queue, message))
            running.add(task)
            task.add_done_callback(running.discard)
        return len(batch)

    async def serve_forever(self) -> None:
        """Poll until cancelled (like `func start`); storage going away is waited out, as the host does."""
        while True:
            try:
                ran = await self.poll_once()
            except (AzureError, OSError) as exc:
                self.storage_errors += 1
                log.warning("storage unavailable while polling: %s", type(exc).__name__)
                ran = 0
            if not ran:
                await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        """Close the queue service client."""
        await self._service.close()


async def _create(queue: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await queue.create_queue()
