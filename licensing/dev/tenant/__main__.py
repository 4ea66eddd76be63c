"""Run the emulated tenant standalone; prints its Graph base URL on one line, then serves until stopped.

python -m licensing.dev.tenant [--port 0] [--fixture PATH | --generate N [--drift F]] [--seed S]
                               [--provisioning-delay S] [--throttle-rate R] [--retry-after S] [--latency-ms MS]
                               [--write-budget N] [--write-window S] [--slow-rate R] [--slow-ms MS]
                               [--strict | --lenient]

--strict follows Graph's documentation where it is hard on a client (licensing/dev/tenant/strict.py),
--lenient is the emulator's older, kinder behaviour; without either, strict.STRICT_BY_DEFAULT decides.

With --generate the tenant is N generated users (licensing.dev.tenant.generate), and
GET /_emulator/expected returns which of them drifted how - a benchmark can run the tenant in its own
process this way, so the tenant's memory is not counted in the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence

from licensing.dev.tenant.faults import Faults
from licensing.dev.tenant.generate import generate_tenant
from licensing.dev.tenant.server import EmulatedTenant
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.strict import STRICT_BY_DEFAULT, Strictness


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(prog="python -m licensing.dev.tenant", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--fixture", help="seed JSON shaped like licensing/dev/tenant/fixture.json")
    source.add_argument("--generate", type=int, metavar="N", help="N generated users instead of the fixture")
    parser.add_argument("--drift", type=float, default=0.10, help="with --generate: fraction drifted (default 0.1)")
    parser.add_argument("--provisioning-delay", type=float, default=30.0, help="seconds until plans are Success")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="fraction of Graph requests answered 429")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on a 429 (default 1)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every Graph request (ms)")
    parser.add_argument(
        "--write-budget", type=int, default=0, help="identity writes allowed per --write-window (default 0: unlimited)"
    )
    parser.add_argument(
        "--write-window", type=float, default=150.0, help="sliding window of the write budget, seconds (default 150)"
    )
    parser.add_argument("--slow-rate", type=float, default=0.0, help="fraction of Graph requests answered late")
    parser.add_argument("--slow-ms", type=float, default=0.0, help="how late a slow answer is, after its effect (ms)")
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument(
        "--strict", dest="strict", action="store_true", default=STRICT_BY_DEFAULT, help="Graph as documented"
    )
    profile.add_argument("--lenient", dest="strict", action="store_false", help="the older, kinder emulator")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed for injected faults (default 0) and for --generate's population (default 7)",
    )
    args = parser.parse_args(argv)
    if args.generate is not None and args.generate < 0:
        parser.error("--generate needs a number of users >= 0")
    if not 0.0 <= args.drift <= 1.0:
        parser.error("--drift must be between 0 and 1")
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    if args.write_budget < 0:
        parser.error("--write-budget must be >= 0")
    if args.write_window <= 0:
        parser.error("--write-window must be > 0")
    if not 0.0 <= args.slow_rate <= 1.0:
        parser.error("--slow-rate must be between 0 and 1")
    if args.slow_ms < 0:
        parser.error("--slow-ms must be >= 0")
    return args


def faults_from(args: argparse.Namespace) -> Faults:
    """The injected faults the command line asks for."""
    return Faults(
        throttle_rate=args.throttle_rate,
        retry_after=args.retry_after,
        latency_ms=args.latency_ms,
        seed=0 if args.seed is None else args.seed,
        write_budget=args.write_budget,
        write_window=args.write_window,
        slow_rate=args.slow_rate,
        slow_ms=args.slow_ms,
    )


def strictness_from(args: argparse.Namespace) -> Strictness:
    """The strictness profile the command line asks for."""
    return Strictness() if args.strict else Strictness.lenient()


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM."""
    strictness = strictness_from(args)
    delay = args.provisioning_delay
    if args.generate is not None:
        seed = 7 if args.seed is None else args.seed
        state, _ = generate_tenant(
            args.generate, seed=seed, drift_fraction=args.drift, provisioning_delay=delay, strictness=strictness
        )
    elif args.fixture:
        state = TenantState.from_fixture(args.fixture, provisioning_delay=delay, strictness=strictness)
    else:
        state = TenantState.default(provisioning_delay=delay, strictness=strictness)
    faults = faults_from(args)
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
