"""`make run`: the whole app on this machine, interactive, until Ctrl-C.

python -m licensing.dev.run [--port N] [--sweep-on-start] [--provisioning-delay S]

Serves every function registered in function_app.py: the HTTP routes on http://127.0.0.1:PORT/api/... (PORT, default
7071), the queue triggers polled from storage and the timer triggers on their NCRONTAB schedules, as the Functions
host would. Storage is AzureWebJobsStorage and Graph is LICENSING_GRAPH_URL when they are set; otherwise it starts
Azurite and the emulated tenant itself. HR_WEBHOOK_SECRET is used when set, else one is generated. Any other app
setting in the environment wins over the local defaults (licensing.dev.localhost.local_settings). It prints the
URLs, the secret and the `export` lines that point the CLI at the same stack; Ctrl-C (or SIGTERM) stops everything it
started. Function keys are not enforced locally.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from licensing.core.errors import LicensingError
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost, local_settings
from licensing.dev.localhttp import LocalHttp, resolve_schedule
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.settings.values import is_loopback_url

DEFAULT_PORT = 7071
TOUR_USER = "liam.obrien@contoso.onmicrosoft.com"  # in the emulated tenant's fixture, unlicensed, no usage location
TOUR_BODY = (
    '{"eventId":"tour-1","type":"hire","employeeId":"E1001","userPrincipalName":"' + TOUR_USER + '",'
    '"department":"Sales","country":"IE"}'
)
log = logging.getLogger(__name__)
Print = Callable[[str], None]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; PORT and SWEEP_ON_START in the environment give the defaults."""
    parser = argparse.ArgumentParser(prog="python -m licensing.dev.run", description=__doc__.splitlines()[0])
    port = os.environ.get("PORT") or str(DEFAULT_PORT)
    parser.add_argument("--port", type=int, default=int(port), help=f"HTTP port (default $PORT or {DEFAULT_PORT})")
    on_start = os.environ.get("SWEEP_ON_START", "").lower() in {"1", "true", "yes"}
    parser.add_argument(
        "--sweep-on-start", action="store_true", default=on_start, help="run the sweep timer once now ($SWEEP_ON_START)"
    )
    parser.add_argument(
        "--provisioning-delay", type=float, default=3.0, help="emulated tenant: seconds until plans are Success"
    )
    return parser.parse_args(argv)


def app_settings(env: dict[str, str], storage: str, graph_url: str) -> dict[str, str]:
    """The local defaults under whatever ``env`` already sets, plus a generated HR secret when there is none."""
    settings = local_settings(storage, graph_url)
    if not is_loopback_url(graph_url) and "LICENSING_GRAPH_AUTH" not in env:
        settings["LICENSING_GRAPH_AUTH"] = "default"  # a real tenant: az login / environment credentials
    settings["SWEEP_SCHEDULE"] = "0 0 2 * * *"  # the timer binds %SWEEP_SCHEDULE%: it must exist
    settings["HR_WEBHOOK_SECRET"] = secrets.token_hex(32)  # hex: safe unquoted in a shell and in openssl -hmac
    return {**settings, **{k: v for k, v in env.items() if k in settings and v}}


def banner(http: LocalHttp, host: LocalHost, env: dict[str, str], started: dict[str, str], generated: bool) -> str:
    """What the developer needs: URLs, timers, where storage and Graph are, the secret, the exports, a first hire."""
    api = http.base_url
    lines = ["", f"licensing: every function in function_app.py, on this machine. Ctrl-C stops {_what(started)}.", ""]
    for route, (methods, _) in sorted(http.routes.items()):
        note = "   <- the status page (?format=json for JSON)" if route == "status" else ""
        lines.append(f"  {'/'.join(methods):<12} {api}/{route}{note}")
    lines += [f"  Queue        {b.function_name:<19} <- {b.queue_name}" for b in host.bindings]
    for name, when in sorted(http.next_runs(env).items(), key=lambda item: item[1]):
        schedule = resolve_schedule(http.schedules[name], env)
        lines.append(f"  Timer        {name:<19} {schedule:<15} next {when:%Y-%m-%d %H:%M:%S} UTC")
    graph = started.get("the emulated tenant", f"{env['LICENSING_GRAPH_URL']} (LICENSING_GRAPH_URL)")
    lines.append(f"  Storage      {started.get('Azurite', 'AzureWebJobsStorage from your environment')}")
    lines.append(f"  Graph        {graph}")
    if generated:
        lines.append(f"  HR secret    {env['HR_WEBHOOK_SECRET']}  (generated for this run; HR_WEBHOOK_SECRET sets it)")
    else:  # a secret the developer chose may be a real one: never echo it to a terminal or a CI log
        lines.append("  HR secret    from HR_WEBHOOK_SECRET in your environment (not shown)")
    lines.append("  Function keys are not enforced locally: ?code=... is accepted and ignored.")
    lines += ["", "Point the CLI (and python -m licensing.dev.post_hire) at this stack, in another terminal:"]
    exported = {k: env[k] for k in ("AzureWebJobsStorage", "LICENSING_GRAPH_URL", "LICENSING_GRAPH_AUTH")}
    exported |= {"HR_WEBHOOK_SECRET": env["HR_WEBHOOK_SECRET"]} if generated else {}
    exported |= {"LICENSING_API_URL": api}
    lines += [f"export {name}={shlex.quote(value)}" for name, value in exported.items()]
    lines += [] if generated else ["# and HR_WEBHOOK_SECRET: the value you set for this terminal"]
    lines += [
        "",
        "Sign and post a hire (bash, openssl, curl; a user of the emulated tenant), then watch it:",
        *tour_commands(),
        "",
    ]
    lines.append(f"licensing: ready at {api} (Ctrl-C to stop)")
    return "\n".join(lines)


def tour_commands() -> list[str]:
    """The copy-paste hire: HMAC-SHA256 over timestamp + "." + body, computed in the shell."""
    return [
        f"BODY='{TOUR_BODY}'",
        "TS=$(date +%s)",
        'SIG=$(printf \'%s.%s\' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$HR_WEBHOOK_SECRET" | awk \'{print $NF}\')',
        'curl -sS "$LICENSING_API_URL/hr/events" -H "Content-Type: application/json" -H "X-Timestamp: $TS" '
        '-H "X-Signature: sha256=$SIG" --data-binary "$BODY"; echo',
        f"# or: .venv/bin/python -m licensing.dev.post_hire {TOUR_USER} --department Sales --country IE",
        ".venv/bin/licensing status",
    ]


def _what(started: dict[str, str]) -> str:
    names = ["the app", *started]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


async def serve(args: argparse.Namespace, out: Print = print) -> int:
    """Start what is missing, serve until SIGINT/SIGTERM, stop what was started; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        storage = os.environ.get("AzureWebJobsStorage", "")  # noqa: SIM112  # the Functions host's own name
        if not storage:
            azurite = Azurite()
            stack.callback(azurite.stop)
            try:
                await asyncio.to_thread(azurite.start)
            except RuntimeError as exc:  # not installed, or it would not start: its message says what to do
                out(f"licensing: {exc}")
                return 1
            storage = azurite.connection_string
            pid = azurite.process.pid if azurite.process else "?"
            started["Azurite"] = f"Azurite (started, pid {pid}), queues on 127.0.0.1:{azurite.queue_port}"
        graph_url = os.environ.get("LICENSING_GRAPH_URL", "")
        if not graph_url:
            state = TenantState.default(provisioning_delay=args.provisioning_delay)
            tenant = await stack.enter_async_context(EmulatedTenant(state=state))
            graph_url = tenant.base_url
            started["the emulated tenant"] = f"emulated tenant (started, in this process) at {graph_url}"
        generated = not os.environ.get("HR_WEBHOOK_SECRET")
        os.environ.update(app_settings(dict(os.environ), storage, graph_url))
        from licensing import composition  # noqa: PLC0415  # after the settings are in the environment

        stack.push_async_callback(composition.reset)
        try:
            await composition.services()  # creates the queues and tables; a bad setting stops us here
        except LicensingError as exc:  # a bad setting, or storage not answering: one line, no traceback
            out(f"licensing: {exc}")
            return 2
        import function_app  # noqa: PLC0415  # imported like the worker does: after the settings exist

        try:
            http = await stack.enter_async_context(LocalHttp(function_app.app, port=args.port))
        except OSError as exc:
            out(f"licensing: cannot serve on 127.0.0.1:{args.port} ({exc.strerror}); try PORT={args.port + 1} make run")
            return 1
        host = LocalHost(function_app.app, storage, poll_interval=0.5)
        stack.push_async_callback(host.close)
        tasks = [asyncio.create_task(host.serve_forever()), asyncio.create_task(http.serve_timers())]
        if args.sweep_on_start:
            tasks.append(asyncio.create_task(http.fire_timer("sweep")))
        out(banner(http, host, dict(os.environ), started, generated))
        if args.sweep_on_start:
            out("licensing: the sweep runs now as well (--sweep-on-start / SWEEP_ON_START)")
        await stop.wait()
        out(f"licensing: stopping ({datetime.now(UTC):%H:%M:%S} UTC)")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out("licensing: stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m licensing.dev.run` and `make run`."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("licensing").setLevel(logging.INFO)  # the app's own lines; the SDKs stay at WARNING
    # azure-functions warns at import that queue functions have no HTTP auth level: true and irrelevant here
    logging.getLogger().addFilter(lambda record: "Auth level is not applied" not in record.getMessage())
    return asyncio.run(serve(args, lambda text: print(text, flush=True)))


if __name__ == "__main__":
    sys.exit(main())
