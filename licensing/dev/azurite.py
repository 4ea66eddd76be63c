"""Start and stop Azurite (npm, pinned in package.json) on free loopback ports, for tests and the demo."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from licensing.settings import APP_ROOT

ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key: it only opens the local emulator.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def azurite_binary() -> str:
    """node_modules/.bin/azurite (make installs it from package.json), else one on PATH."""
    local = APP_ROOT / "node_modules" / ".bin" / "azurite"
    found = str(local) if local.exists() else shutil.which("azurite")
    if not found:
        raise RuntimeError("azurite is not installed: run `npm ci` (or `make install`) in the repo root")
    return found


@dataclass
class Azurite:
    """A running Azurite; in memory unless ``location`` is given (then it persists across restarts)."""

    location: Path | None = None
    blob_port: int = field(default_factory=free_port)
    queue_port: int = field(default_factory=free_port)
    table_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        """A connection string for all three services on our ports."""
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )

    def start(self, timeout: float = 30.0) -> Azurite:
        """Start it and wait until all three ports accept connections."""
        ports = {"blob": self.blob_port, "queue": self.queue_port, "table": self.table_port}
        args = [azurite_binary(), "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
        args += [arg for service in ports for arg in (f"--{service}Host", "127.0.0.1")]
        args += [arg for service, port in ports.items() for arg in (f"--{service}Port", str(port))]
        args += ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
        deadline = time.monotonic() + timeout
        for port in ports.values():
            while not _listening(port):
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"azurite exited with {self.process.returncode}: {err[-500:]}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"azurite did not open port {port} within {timeout:.0f} s")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop it (in-memory data is gone; a ``location`` keeps it)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
