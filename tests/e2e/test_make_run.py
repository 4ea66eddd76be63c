"""`make run` (python -m licensing.dev.run) as a developer uses it: start it, paste its exports, post a signed hire,
follow it with `licensing status` and the status page, press Ctrl-C, and nothing it started is left running."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from licensing.dev.localhttp import LocalHttp, resolve_schedule
from tests.e2e.run_stack import REPO, STOP_SECONDS, Run, alive, clean_env, descendants, make_run, wait_for

SETTLE_SECONDS = 60.0


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    """`make run` on a free port, from a shell that sets none of the app's own settings."""
    with make_run() as running:
        yield running


def cli_status(exports: dict[str, str]) -> list[dict[str, Any]]:
    """`licensing status --json` in a shell holding the printed exports."""
    env = clean_env() | exports
    done = subprocess.run(
        [sys.executable, "-m", "licensing", "status", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def verified(exports: dict[str, str], upn: str) -> bool:
    """The user's EMS row says verified (the UPN is in "user", or in "userPrincipalName" beside the object id)."""
    rows = cli_status(exports)
    mine = [r for r in rows if upn in (r.get("user"), r.get("userPrincipalName")) and r["sku"] == "EMS"]
    return any(r["outcome"] == "verified" for r in mine)


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")), reason="the tour needs openssl and curl")
def test_make_run_serves_a_signed_hire_to_verified_and_ctrl_c_stops_everything(run: Run) -> None:
    """The printed shell hire and the helper's hire end verified in `licensing status`; Ctrl-C leaves nothing."""
    exports = run.exports()
    assert set(exports) == {
        "AzureWebJobsStorage",
        "LICENSING_GRAPH_URL",
        "LICENSING_GRAPH_AUTH",
        "HR_WEBHOOK_SECRET",
        "LICENSING_API_URL",
    }
    api = exports["LICENSING_API_URL"]
    assert re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/api", api)
    assert re.fullmatch(r"[0-9a-f]{64}", exports["HR_WEBHOOK_SECRET"])  # generated: none was in the environment
    banner = "\n".join(run.lines)
    assert all(
        f"Timer        {name}" in banner
        for name in ("sweep", "release_scheduled", "graph_subscription", "daily_snapshot")
    )
    children = descendants(run.process.pid)
    assert children, "Azurite should run as a child process"

    # The copy-paste command, exactly as printed, in bash with the printed exports.
    shell_env = clean_env() | exports
    pasted = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", run.tour()],
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(pasted.stdout)["accepted"] == ["tour-1"], pasted.stdout
    helper = subprocess.run(
        [
            sys.executable,
            "-m",
            "licensing.dev.post_hire",
            "priya.raman@contoso.onmicrosoft.com",
            "--department",
            "Engineering",
            "--country",
            "US",
        ],
        cwd=REPO,
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the assertion below shows its output
    )
    assert helper.returncode == 0, helper.stdout + helper.stderr
    assert helper.stdout.startswith("202 ")
    for upn in ("liam.obrien@contoso.onmicrosoft.com", "priya.raman@contoso.onmicrosoft.com"):
        wait_for(functools.partial(verified, exports, upn), SETTLE_SECONDS, f"{upn} verified in `licensing status`")

    with urllib.request.urlopen(f"{api}/status?code=ignored-locally", timeout=30) as page:
        assert page.status == 200
        assert page.headers.get_content_type() == "text/html"
        html = page.read().decode()
    assert re.search(r'data-outcome="verified">.*?data-field="count">2<', html, re.DOTALL), "2 verified on the page"

    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(STOP_SECONDS) == 0
    wait_for(lambda: not any(alive(pid) for pid in children), STOP_SECONDS, "every child process gone")
    assert run.lines[-1] == "licensing: stopped"


def test_a_schedule_bound_to_an_app_setting_reads_it() -> None:
    """%SWEEP_SCHEDULE% resolves from the settings, as the host binds it; a missing setting is named."""
    assert resolve_schedule("%SWEEP_SCHEDULE%", {"SWEEP_SCHEDULE": "0 0 3 * * *"}) == "0 0 3 * * *"
    with pytest.raises(ValueError, match="SWEEP_SCHEDULE"):
        resolve_schedule("%SWEEP_SCHEDULE%", {})


async def test_serve_timers_runs_each_timer_on_its_schedule_and_survives_a_failed_run() -> None:
    """A timer due every second runs again after a run that raised, as the host does; none is marked past due."""
    app = func.FunctionApp()
    runs: list[bool] = []
    third = asyncio.Event()

    @app.timer_trigger(arg_name="timer", schedule="%EVERY_SECOND%", run_on_startup=False)
    async def every_second(timer: func.TimerRequest) -> None:
        runs.append(timer.past_due)
        if len(runs) == 3:
            third.set()
        if len(runs) == 1:
            raise RuntimeError("the first run fails")

    http = LocalHttp(app)
    assert http.schedules == {"every_second": "%EVERY_SECOND%"}
    serving = asyncio.create_task(http.serve_timers({"EVERY_SECOND": "* * * * * *"}))
    try:
        await asyncio.wait_for(third.wait(), timeout=10)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    assert runs[:3] == [False, False, False]
