"""`licensing sweep --dry-run` through the CLI's entry point: the preview moves no delta cursor."""

from __future__ import annotations

import asyncio
import json

import pytest

from licensing.cli.main import main
from licensing.dev.azurite import Azurite
from licensing.dev.tenant import EmulatedTenant
from tests.conftest import REPO, wipe_storage
from tests.helpers import hire


async def test_a_cli_dry_run_leaves_the_drift_for_the_next_real_run(
    tenant: EmulatedTenant, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """sweep; hire; `sweep --dry-run` sees the hire; the next `sweep` (a delta read) still sees it too."""
    env = {
        "LICENSING_GRAPH_URL": tenant.base_url,
        "LICENSING_GRAPH_AUTH": "none",
        "LICENSING_POLICY_PATH": str(REPO / "licensing-policy.json"),
        "AzureWebJobsStorage": azurite.connection_string,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    await wipe_storage(azurite.connection_string)

    async def sweep(*args: str) -> dict[str, object]:
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["sweep", "--json", *args]) == 0
        summary: dict[str, object] = json.loads(capsys.readouterr().out)
        return summary

    await sweep()
    hire(tenant, "previewed")
    preview = await sweep("--dry-run")
    assert (preview["read"], preview["usersSeen"], preview["dryRun"]) == ("delta", 1, True)
    real = await sweep()
    assert (real["read"], real["usersSeen"], real["dryRun"]) == ("delta", 1, False)
    assert real["drift"] == preview["drift"]
