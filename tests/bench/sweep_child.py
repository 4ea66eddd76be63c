"""One sweep in its own process (so its peak RSS is its own): prints a JSON line with time, counts and RSS."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from licensing import composition
from licensing.services.sweep import run_sweep


async def main() -> None:
    services = await composition.services()
    started = time.perf_counter()
    result = await run_sweep(services, mode="report", force_full=sys.argv[1:] == ["--full"])
    elapsed = time.perf_counter() - started
    await composition.reset()
    print(json.dumps({
        "seconds": elapsed, "users": result.users_seen, "drifted": result.users_drifted,
        "requests": result.graph_requests, "drift": dict(result.drift), "devices": result.devices,
        "notes": result.notes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
