"""The composition root: builds adapters from Settings lazily, once per process (and event loop)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from licensing import telemetry
from licensing.graph import GraphGateway, GraphPort
from licensing.policy import Policy, load_policy
from licensing.records import utcnow
from licensing.settings import Settings
from licensing.storage import Storage
from licensing.write_budget import WriteBudget

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a service function needs; tests build one around the emulated tenant and Azurite."""

    settings: Settings
    graph: GraphPort
    storage: Storage
    clock: Callable[[], datetime] = utcnow
    _policy: Policy | None = field(default=None, repr=False)

    _budget: WriteBudget | None = field(default=None, repr=False)

    @property
    def budget(self) -> WriteBudget:
        """The shared Graph write budget (LICENSING_WRITE_BUDGET per LICENSING_WRITE_WINDOW_SECONDS)."""
        if self._budget is None:
            self._budget = WriteBudget(
                self.storage, writes=self.settings.write_budget,
                window_seconds=self.settings.write_window_seconds, clock=self.clock,
            )  # fmt: skip
        return self._budget

    def policy(self) -> Policy:
        """The policy file, loaded on first use (PolicyError if it is invalid)."""
        if self._policy is None:
            self._policy = load_policy(self.settings.policy_path)
        return self._policy

    async def close(self) -> None:
        """Close HTTP sessions (they belong to the event loop that opened them)."""
        await self.storage.close()
        if isinstance(self.graph, GraphGateway):
            await self.graph.close()


_current: tuple[asyncio.AbstractEventLoop, Services] | None = None
_building: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


async def services() -> Services:
    """The process-wide Services, built on first use — never at import time, so indexing never fails."""
    loop = asyncio.get_running_loop()
    if _current is not None and _current[0] is loop:
        return _current[1]
    # A cold worker receives a whole batch at once: build once, not once per message.
    async with _building.setdefault(loop, asyncio.Lock()):
        return await _build(loop)


async def _build(loop: asyncio.AbstractEventLoop) -> Services:
    global _current  # noqa: PLW0603  # one cached root per process is the point
    if _current is None or _current[0] is not loop:
        settings = Settings.from_env()
        telemetry.configure(settings)  # once per process; nothing at all without APPLICATIONINSIGHTS_CONNECTION_STRING
        built = Services(
            settings, GraphGateway.from_settings(settings), Storage.from_settings(settings.require_storage())
        )
        await built.storage.ensure_created()
        _current = (loop, built)
        log.info("services built (graph auth %s)", settings.graph_auth)
    return _current[1]


async def reset() -> None:
    """Forget the cached Services (tests change settings between cases)."""
    global _current
    _building.clear()
    if _current is not None:
        old, _current = _current[1], None
        await old.close()
