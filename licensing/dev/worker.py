"""One worker process of the local host: a stand-in for one Flex Consumption instance, for scale-out tests.

python -m licensing.dev.worker [--limit-seconds S] [--lease-seconds S] [--retry-visibility S]

Reads the app settings from the environment (AzureWebJobsStorage, LICENSING_GRAPH_URL, ... as the Functions host
gives them), runs the queue functions registered in function_app.py until every queue is empty (delayed and
invisible messages included, so it waits for the other instances too), then prints its HostStats as one JSON line.
Several of these against one storage account and one tenant behave like several instances of the app in Azure:
the per-user leases, the write budget and the status rows' ETags are what keep them from stepping on each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict

from licensing.dev.localhost import LocalHost


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(prog="python -m licensing.dev.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--limit-seconds", type=float, default=600.0, help="give up (exit 1) after this long")
    parser.add_argument("--lease-seconds", type=int, default=20, help="how long a received message stays invisible")
    parser.add_argument("--retry-visibility", type=float, default=1.0, help="seconds before a failed message is back")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between polls of an idle queue")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Run until idle; the stats as plain data."""
    import function_app  # noqa: PLC0415  # the app under test, imported once the settings are in the environment
    from licensing import composition  # noqa: PLC0415

    host = LocalHost(
        function_app.app,
        os.environ["AzureWebJobsStorage"],  # noqa: SIM112  # the Functions host's own name
        retry_visibility=args.retry_visibility,
        poll_interval=args.poll_interval,
        lease_seconds=args.lease_seconds,
    )
    try:
        stats = await host.run_until_idle(limit_seconds=args.limit_seconds)
    finally:
        await host.close()
        await composition.reset()
    return {**asdict(stats), "storageErrors": host.storage_errors, "pid": os.getpid()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when the queues were drained, 1 when the limit was reached first."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        stats = asyncio.run(run(args))
    except TimeoutError as exc:
        print(json.dumps({"error": str(exc), "pid": os.getpid()}), flush=True)
        return 1
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
