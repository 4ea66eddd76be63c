"""The local host's receive: every message it takes off the queue (making it invisible) is one it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import function_app
from licensing.dev.azurite import ACCOUNT, ACCOUNT_KEY
from licensing.dev.localhost import LocalHost

NOWHERE = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
           f"QueueEndpoint=http://127.0.0.1:9/{ACCOUNT};")  # fmt: skip  # never contacted: the queue is a stand-in


class ShortFirstPage:
    """A stand-in queue whose pager behaves like azure-storage-queue's: it fetches page after page, each of at
    most messages_per_page, until a page is empty or max_messages are taken; a fetched message is invisible."""

    def __init__(self, *pages: list[str]) -> None:
        self.pages = list(pages)
        self.fetched: list[str] = []

    def receive_messages(
        self, *, messages_per_page: int, visibility_timeout: int, max_messages: int | None = None
    ) -> AsyncIterator[str]:
        async def pager() -> AsyncIterator[str]:
            left = max_messages
            for page in self.pages:
                size = messages_per_page if left is None else min(messages_per_page, left)
                chunk = page[:size]
                if not chunk:
                    return
                self.fetched += chunk
                left = None if left is None else left - len(chunk)
                for message in chunk:
                    yield message
                if left == 0:
                    return

        return pager()


async def test_a_short_first_page_leaves_no_message_received_but_never_run() -> None:
    """3 messages, then 16 more visible: the batch holds exactly what was fetched (before: 3 were stranded)."""
    host = LocalHost(function_app.app, NOWHERE)
    queue = ShortFirstPage([f"a{i}" for i in range(3)], [f"b{i}" for i in range(16)])
    batch: list[Any] = await host._receive(queue)  # type: ignore[arg-type]  # the stand-in has what _receive uses
    await host.close()
    assert batch == queue.fetched
    assert len(batch) == host.batch_size
