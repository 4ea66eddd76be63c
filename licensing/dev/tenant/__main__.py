"""Run the emulated tenant standalone; prints its Graph base URL on one line, then serves until stopped.

python -m licensing.dev.tenant [--port 0] [--fixture PATH] [--provisioning-delay S] [--throttle-rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence

from licensing.dev.tenant.faults import Faults
from licensing.dev.tenant.server import EmulatedTenant
from licensing.dev.tenant.state import TenantState


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(prog="python -m licensing.dev.tenant", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--fixture", help="seed JSON shaped like licensing/dev/tenant/fixture.json")
    parser.add_argument("--provisioning-delay", type=float, default=30.0, help="seconds until plans are Success")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="fraction of Graph requests answered 429")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on a 429 (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for injected faults")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM."""
    state = (
        TenantState.from_fixture(args.fixture, provisioning_delay=args.provisioning_delay)
        if args.fixture
        else TenantState.default(provisioning_delay=args.provisioning_delay)
    )
    faults = Faults(throttle_rate=args.throttle_rate, retry_after=args.retry_after, seed=args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    async with EmulatedTenant(state, faults, host=args.host, port=args.port) as tenant:
        print(tenant.base_url, flush=True)  # scripts read this one line
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
