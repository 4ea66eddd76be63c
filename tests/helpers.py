"""Small helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

import function_app
from licensing import composition
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings, user_function
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.dev.tenant.model import User
from licensing.services.context import Services
from tests.conftest import wipe_storage

EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
INTUNE_A = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"
RMS_S_PREMIUM = "6c57d4b6-3b23-47a5-9bc9-69f17b4947b3"
ASSIGN = "POST /users/{id}/assignLicense"


def hire(tenant: EmulatedTenant, name: str, *, location: str | None = "US", **attributes: Any) -> User:
    """A new user with no license in the emulated tenant."""
    attributes.setdefault("department", "Sales")
    return tenant.state.add_user(f"{name}@contoso.onmicrosoft.com", name.title(), usage_location=location, **attributes)


def request(user: str, *, request_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """An onboarding request as producers send it."""
    return {"user": user, "source": "manual", "requestId": request_id or uuid.uuid4().hex, **extra}


def queue_message(body: str | bytes | dict[str, Any], *, dequeue_count: int = 1) -> func.QueueMessage:
    """A real azure.functions QueueMessage, as the worker hands it to a function."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body if isinstance(body, bytes) else body.encode()
    msg: func.QueueMessage = QueueMessage(  # type: ignore[no-untyped-call]
        id=uuid.uuid4().hex, body=raw, dequeue_count=dequeue_count, pop_receipt="p"
    )
    return msg


async def invoke(name: str, body: str | bytes | dict[str, Any], *, dequeue_count: int = 1) -> None:
    """Call a function registered in function_app.py, exactly as the worker would."""
    await user_function(function_app.app, name)(queue_message(body, dequeue_count=dequeue_count))


async def drain(services: Services, queue: str, *, wait_seconds: float = 5.0) -> list[dict[str, Any]]:
    """Take every message off a queue, waiting for delayed ones to become visible, decoded from JSON."""
    client = services.storage.queue(queue)
    found: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while (await client.get_queue_properties()).approximate_message_count:
        async for message in client.receive_messages(messages_per_page=32, visibility_timeout=30):
            found.append(json.loads(message.content))
            await client.delete_message(message)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{queue} still holds invisible messages after {wait_seconds} s")
        await asyncio.sleep(0.1)
    return found


async def statuses(services: Services, user_key: str) -> dict[str, StatusRecord]:
    """A user's status rows by SKU (``-`` for request-level rows)."""
    return {r.sku: r async for r in services.storage.statuses(user_key)}


def encode(body: dict[str, Any]) -> str:
    """Base64 of JSON, as the Functions host expects queue messages."""
    return base64.b64encode(json.dumps(body).encode()).decode()


@asynccontextmanager
async def app_over(
    state: TenantState, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, **env: str
) -> AsyncIterator[tuple[Services, EmulatedTenant]]:
    """The app's own composition root over an emulated tenant of this state and clean storage (plus env settings)."""
    async with EmulatedTenant(state=state) as tenant:
        for key, value in {**local_settings(azurite.connection_string, tenant.base_url), **env}.items():
            monkeypatch.setenv(key, value)
        await wipe_storage(azurite.connection_string)
        await composition.reset()
        try:
            yield await composition.services(), tenant
        finally:
            await composition.reset()
