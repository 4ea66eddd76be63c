"""`make bench` (cold start): what importing function_app costs, against a bare `import azure.functions`.

Every Flex Consumption cold start imports function_app so the worker can index the functions; the adapters and
use cases load on the first invocation instead. Each import runs in a fresh interpreter (RUNS of each,
interleaved in one run so both see the same machine), timed inside the child around the import alone, so the
interpreter's own start-up is left out. Exits non-zero when the median ratio is above TARGET.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

APP_ROOT = Path(__file__).resolve().parents[2]
RUNS = 5
TARGET = 2.0  # import function_app <= 2x import azure.functions
BARE = "azure.functions"
OURS = "function_app"
CHILD = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str) -> float:
    """Wall time of `import <module>` in a fresh interpreter, measured inside it."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(module=module)], cwd=APP_ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(runs: int = RUNS) -> dict[str, list[float]]:
    """RUNS timings per module, interleaved (and the order alternated) so drift in machine load hits both."""
    times: dict[str, list[float]] = {BARE: [], OURS: []}
    for i in range(runs):
        for module in (BARE, OURS) if i % 2 == 0 else (OURS, BARE):
            times[module].append(import_seconds(module))
    return times


def main() -> None:
    times = measure()
    bare, ours = statistics.median(times[BARE]), statistics.median(times[OURS])
    ratio = ours / bare
    table = Table(title=f"Cold start: import time in a fresh interpreter (median of {RUNS}, interleaved)")
    for column in ("what", "median s", "ratio"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row(f"bare: import {BARE}", f"{bare:.3f}", "1.0x")
    table.add_row(f"ours: import {OURS}", f"{ours:.3f}", f"{ratio:.2f}x")
    console = Console()
    console.print(table)
    verdict = "ok" if ratio <= TARGET else "FAILED"
    console.print(f"target: import {OURS} <= {TARGET:.0f}x import {BARE}: {ratio:.2f}x, {verdict}")
    if ratio > TARGET:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
