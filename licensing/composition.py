"""The composition root: builds adapters from Settings lazily, once per process (and event loop).

Nothing heavy is imported here at module level: every Flex Consumption cold start imports function_app, and the
Graph SDK, the Storage SDKs, OpenTelemetry, the settings and the policy model (pydantic) are loaded only when the
first invocation builds the Services.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from licensing.services.context import Services

log = logging.getLogger(__name__)


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
        # Loaded here, on the first invocation, not when the worker indexes the functions (cold start).
        from licensing.adapters import telemetry  # noqa: PLC0415
        from licensing.adapters.graph.gateway import GraphGateway  # noqa: PLC0415
        from licensing.adapters.storage.account import Storage  # noqa: PLC0415
        from licensing.services.context import Services  # noqa: PLC0415
        from licensing.settings import Settings  # noqa: PLC0415

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
