"""What a use case is handed: settings, the Graph and Storage adapters, a clock, the policy and the write budget.

The composition root (licensing.composition) builds one per process; tests build one around the emulated tenant
and Azurite. Adapter types are imported for annotations only, so importing a use case loads no SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from licensing.core.records import utcnow

if TYPE_CHECKING:
    from licensing.adapters.graph.gateway import GraphPort
    from licensing.adapters.storage.account import Storage
    from licensing.adapters.storage.write_budget import WriteBudget
    from licensing.core.policy import Policy
    from licensing.settings import Settings


@dataclass
class Services:
    """Everything a service function needs."""

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
            from licensing.adapters.storage.write_budget import WriteBudget  # noqa: PLC0415  # on first write

            settings = self.settings
            self._budget = WriteBudget(
                self.storage,
                writes=settings.write_budget,
                window_seconds=settings.write_window_seconds,
                clock=self.clock,
            )
        return self._budget

    def policy(self) -> Policy:
        """The policy file, loaded on first use (PolicyError if it is invalid)."""
        if self._policy is None:
            # Loaded here, not at import: the policy model is pydantic, and function_app imports this (cold start).
            from licensing.adapters.policy_file import load_policy  # noqa: PLC0415

            self._policy = load_policy(self.settings.policy_path)
        return self._policy

    async def close(self) -> None:
        """Close HTTP sessions (they belong to the event loop that opened them)."""
        await self.storage.close()
        closer = getattr(self.graph, "close", None)
        if closer is not None:
            await closer()
