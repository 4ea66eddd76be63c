"""Storage restarting mid-run (Azurite with on-disk persistence): every request still ends verified."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import function_app
from licensing import composition
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost, local_settings
from licensing.dev.tenant import EmulatedTenant, TenantState
from tests.helpers import hire, request, statuses


async def test_no_request_is_lost_when_storage_restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """20 hires queued; Azurite stops and starts again (same folder, same ports) while they are processed."""
    azurite = Azurite(location=tmp_path / "azurite").start()
    try:
        async with EmulatedTenant(state=TenantState.default(provisioning_delay=0.5)) as tenant:
            for key, value in local_settings(azurite.connection_string, tenant.base_url).items():
                monkeypatch.setenv(key, value)
            await composition.reset()
            services = await composition.services()
            users = [hire(tenant, f"restart{i}") for i in range(20)]
            for user in users:
                await services.storage.queue(LICENSE_REQUESTS_QUEUE).send_message(
                    json.dumps(request(user.user_principal_name))
                )
            host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=1, poll_interval=0.05,
                             lease_seconds=4)  # fmt: skip
            running = asyncio.create_task(host.run_until_idle(limit_seconds=120))
            while sum(host.stats.succeeded.values()) < 5:  # noqa: ASYNC110  # watching the host task's counter
                await asyncio.sleep(0.05)
            assigned_before_restart = tenant.state.requests["POST /users/{id}/assignLicense"]
            await asyncio.to_thread(azurite.stop)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(azurite.start)
            stats = await running
            await host.close()
            assert stats.poisoned == {}
            # the restart fell in the middle of the run (the storage SDK's own retries ride out the gap)
            assert assigned_before_restart < 20
            assert tenant.state.requests["POST /users/{id}/assignLicense"] == 20
            for user in users:
                assert (await statuses(services, user.id))["EMS"].outcome == "verified", user.user_principal_name
            assert len({tuple(a.sku_id for a in u.assignments) for u in users}) == 1
            await composition.reset()
    finally:
        azurite.stop()
