"""Helpers shared by the emulated-tenant tests."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def standalone_tenant(*args: str) -> Iterator[str]:
    """``python -m licensing.dev.tenant ARGS`` in its own process; yields the base URL it prints.

    A watchdog kills it after 20 s; on exit it is terminated and must have stopped cleanly.
    """
    command = [sys.executable, "-m", "licensing.dev.tenant", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        watchdog = threading.Timer(20, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            assert base_url.endswith("/v1.0")
            yield base_url
        finally:
            watchdog.cancel()
            process.terminate()
    assert process.returncode == 0
