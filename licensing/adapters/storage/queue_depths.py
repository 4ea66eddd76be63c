"""How many messages wait in each of our queues (the service's approximate count), for the status page."""

from __future__ import annotations

import asyncio

from azure.core.exceptions import ResourceNotFoundError

from licensing.adapters.storage.account import QUEUES, Storage, transient


async def queue_depths(storage: Storage, names: tuple[str, ...] = QUEUES) -> tuple[tuple[str, int], ...]:
    """(queue, approximate message count) for each queue, read in parallel: one small call each, whatever the
    queue holds. A queue not created yet counts as empty."""

    async def depth(name: str) -> int:
        try:
            properties = await storage.queue(name).get_queue_properties()
        except ResourceNotFoundError:
            return 0
        return int(properties.approximate_message_count or 0)

    with transient("read the queue depths"):
        counts = await asyncio.gather(*(depth(name) for name in names))
    return tuple(zip(names, counts, strict=True))
