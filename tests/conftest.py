"""Shared fixtures: a real Azurite per session, an emulated Graph tenant per test, app settings wired to both."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableServiceClient
from azure.storage.queue.aio import QueueServiceClient

from licensing import composition
from licensing.adapters.storage.account import QUEUES, TABLES
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.services.context import Services

REPO = Path(__file__).resolve().parents[1]
HR_SECRET = "test-hr-secret-3c1f"  # a marker: tests grep logs and tables to prove it never leaks
HR_PREVIOUS_SECRET = "test-hr-previous-9a2b"
CLIENT_STATE = "test-client-state-77d0"


class _SecretWatch(logging.Handler):
    """Sees every log record of the run and keeps the ones that contain a secret's value."""

    def __init__(self, markers: tuple[str, ...]) -> None:
        super().__init__(level=logging.DEBUG)
        self.markers = markers
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not break the run
            return
        if any(marker in text for marker in self.markers):
            self.leaks.append(f"{record.name}: {text[:200]}")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_logs() -> Iterator[None]:
    """Across the whole suite (INFO and up), no log line contains the HR secrets or the Graph clientState."""
    watch = _SecretWatch((HR_SECRET, HR_PREVIOUS_SECRET, CLIENT_STATE))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(watch)
    root.setLevel(min(previous, logging.INFO))
    yield
    root.removeHandler(watch)
    root.setLevel(previous)
    assert not watch.leaks, f"secret values were logged: {watch.leaks[:3]}"


@pytest.fixture(scope="session", autouse=True)
def no_telemetry_export() -> Iterator[None]:
    """A developer's own APPLICATIONINSIGHTS_CONNECTION_STRING never reaches the app under test: nothing is exported."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
        yield


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One in-memory Azurite on free loopback ports for the whole run."""
    with Azurite() as running:
        yield running


async def wipe_storage(connection_string: str) -> None:
    """Empty our queues and drop our tables so each test starts clean."""
    async with QueueServiceClient.from_connection_string(connection_string) as queues:
        for name in QUEUES:
            with contextlib.suppress(ResourceNotFoundError):
                await queues.get_queue_client(name).clear_messages()
    async with TableServiceClient.from_connection_string(connection_string) as tables:
        for name in TABLES:
            await tables.delete_table(name)


@pytest.fixture
async def tenant() -> AsyncIterator[EmulatedTenant]:
    """The shipped demo tenant, provisioning instantly unless a test says otherwise."""
    async with EmulatedTenant(state=TenantState.default(provisioning_delay=0)) as running:
        yield running


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, azurite: Azurite, tenant: EmulatedTenant) -> dict[str, str]:
    """App settings pointing at Azurite and the emulated tenant, with test-speed delays."""
    env = {
        **local_settings(azurite.connection_string, tenant.base_url),
        "LICENSING_CATALOG_TTL_SECONDS": "0",
        "HR_WEBHOOK_SECRET": HR_SECRET,
        "HR_WEBHOOK_SECRET_PREVIOUS": HR_PREVIOUS_SECRET,
        "GRAPH_NOTIFICATION_CLIENT_STATE": CLIENT_STATE,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def services(app_env: dict[str, str], azurite: Azurite) -> AsyncIterator[Services]:
    """The app's own composition root, built from the environment above, on clean storage."""
    await wipe_storage(azurite.connection_string)
    await composition.reset()
    built = await composition.services()
    yield built
    await composition.reset()
