"""`make run` (python -m licensing.dev.run) as a developer uses it: start it, paste its exports, post a signed hire,
follow it with `licensing status` and the status page, press Ctrl-C, and nothing it started is left running."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from licensing.dev.azurite import free_port
from licensing.dev.localhttp import LocalHttp, next_occurrence, resolve_schedule

REPO = Path(__file__).resolve().parents[2]
# Settings a developer's shell (or another test) may hold: `make run` must start its own stack without them.
OWN_SETTINGS = (
    "AzureWebJobsStorage",
    "LICENSING_GRAPH_URL",
    "LICENSING_GRAPH_AUTH",
    "HR_WEBHOOK_SECRET",
    "HR_WEBHOOK_SECRET_PREVIOUS",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "SWEEP_ON_START",
)
START_SECONDS = 90.0
SETTLE_SECONDS = 60.0
STOP_SECONDS = 30.0


@dataclass
class Run:
    """A running `python -m licensing.dev.run` and what it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("licensing: ready"):
                self.ready.set()
        self.ready.set()  # stdout closed: it exited; the test reads why from the lines

    def exports(self) -> dict[str, str]:
        """The `export NAME=value` lines, read as bash would."""
        found = {}
        for line in self.lines:
            if line.startswith("export "):
                name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
                found[name] = value
        return found

    def tour(self) -> str:
        """The copy-paste hire commands it printed (between the heading and the helper's comment)."""
        start = next(i for i, line in enumerate(self.lines) if line.startswith("Sign and post a hire"))
        end = next(i for i, line in enumerate(self.lines) if line.startswith("# or:"))
        return "\n".join(self.lines[start + 1 : end])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: Linux)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.5)
    return result


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    """`make run` on a free port, from a shell that sets none of the app's own settings."""
    env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS} | {"PORT": str(free_port())}
    process = subprocess.Popen(
        [sys.executable, "-m", "licensing.dev.run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # SIGINT reaches only the run: stopping Azurite is its job, not the terminal's
    )
    running = Run(process)
    threading.Thread(target=running.read, daemon=True).start()
    try:
        assert running.ready.wait(START_SECONDS), f"no 'ready' line within {START_SECONDS:.0f} s"
        assert process.poll() is None, "\n".join(running.lines[-20:])
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_SECONDS)


def cli_status(exports: dict[str, str]) -> list[dict[str, Any]]:
    """`licensing status --json` in a shell holding the printed exports."""
    env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS} | exports
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
    assert all(f"Timer        {name}" in banner for name in ("sweep", "release_scheduled", "graph_subscription"))
    children = descendants(run.process.pid)
    assert children, "Azurite should run as a child process"

    # The copy-paste command, exactly as printed, in bash with the printed exports.
    shell_env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS} | exports
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


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("0 0 2 * * *", "2026-03-14T10:07:30.5", "2026-03-15T02:00:00"),  # the sweep's default: tomorrow 02:00
        ("0 */15 * * * *", "2026-03-14T10:15:00", "2026-03-14T10:30:00"),  # strictly after, never the same second
        ("0 7 * * * *", "2026-12-31T23:59:59", "2027-01-01T00:07:00"),
        ("0 30 9 * * mon-fri", "2026-03-14T12:00:00", "2026-03-16T09:30:00"),  # Saturday -> Monday
        ("0 0 12 13 * fri", "2026-03-14T00:00:00", "2026-11-13T12:00:00"),  # day AND weekday, as NCrontab
        ("5/20 * * * * *", "2026-03-14T10:07:46", "2026-03-14T10:08:05"),
        ("0 0 0 29 feb *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ],
)
def test_timers_fire_at_the_next_ncrontab_occurrence(schedule: str, after: str, expected: str) -> None:
    """The local timer loop finds the next six-field NCRONTAB occurrence in UTC."""
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert next_occurrence(schedule, start) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


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
