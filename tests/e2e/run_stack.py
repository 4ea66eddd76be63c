"""`make run`'s stack for tests: start `python -m licensing.dev.run` as a developer would, read its banner and exports,
and stop it with Ctrl-C (SIGINT). Shared by test_make_run.py and test_docs_examples.py."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from licensing.dev.azurite import free_port

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
STOP_SECONDS = 30.0


@dataclass
class Run:
    """A running `python -m licensing.dev.run` and what it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        """Collect stdout lines until it closes; `ready` is set at the ready line (or at exit)."""
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


def clean_env() -> dict[str, str]:
    """This process's environment without the app's own settings."""
    return {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS}


def shell_env(exports: dict[str, str]) -> dict[str, str]:
    """A second terminal: the printed exports pasted, and the venv's bin first on PATH (as after `activate`)."""
    venv_bin = str(Path(sys.executable).parent)
    return clean_env() | exports | {"PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}


@contextlib.contextmanager
def make_run(*args: str) -> Iterator[Run]:
    """`make run` on a free port, from a shell that sets none of the app's own settings; SIGINT when done."""
    env = clean_env() | {"PORT": str(free_port())}
    process = subprocess.Popen(
        [sys.executable, "-m", "licensing.dev.run", *args],
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
