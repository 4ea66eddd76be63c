"""A host that must never hear from the app (it records whatever reaches it) and a credential with a real-looking
token, so that a test can prove the Graph token goes to the Graph host and nowhere else."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import pytest
from aiohttp import web
from azure.core.credentials import AccessToken

TOKEN = "tenant-wide-token-5e1d"  # a marker: it must reach the Graph host only


@dataclass
class Trap:
    """An aiohttp server on another loopback port that answers everything with a page of nothing and records
    ``(method, path, Authorization header)`` of every request it gets."""

    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    port: int = 0  # the port actually bound, once entered
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1.0``: shaped like Graph, on a port that is not Graph's."""
        return f"http://127.0.0.1:{self.port}/v1.0"

    async def _record(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path_qs, request.headers.get("Authorization")))
        return web.json_response({"value": [], "@odata.deltaLink": f"{self.base_url}/users/delta?$deltatoken=t"})

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakeCredential:
    """An AsyncTokenCredential that hands out TOKEN for any scope and counts how often it was asked."""

    def __init__(self, *_: Any, **__: Any) -> None:  # takes what DefaultAzureCredential takes
        self.asked = 0

    async def get_token(self, *scopes: str, **_: Any) -> AccessToken:  # claims, enable_cae, ...
        """TOKEN, valid for an hour."""
        self.asked += 1
        return AccessToken(TOKEN, int(time.time()) + 3600)

    async def close(self) -> None:
        """Nothing to close."""


def sign_in_with_fake_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """LICENSING_GRAPH_AUTH=default builds FakeCredential: every Graph call carries ``Bearer TOKEN``."""
    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", FakeCredential)
    monkeypatch.setenv("LICENSING_GRAPH_AUTH", "default")
