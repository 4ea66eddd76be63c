"""`make demo`: the onboarding job end to end on this machine.

Starts Azurite and the emulated tenant, points the app's settings at them, runs the very functions
registered in function_app.py through the local host, enqueues a realistic batch of onboarding requests,
waits until every queue is idle, prints a table per user, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import LocalHost, local_settings
from licensing.dev.tenant import EmulatedTenant, TenantState

# What each status means for an admin scanning the table.
COLOURS = {
    "verified": "green",
    "assigned": "cyan",
    "pending": "yellow",
    "blocked": "magenta",
    "failed": "red",
    "rejected": "red",
}


def demo_requests(tenant: EmulatedTenant) -> list[str]:
    """One request per user in the fixture (new hires and already-licensed ones), an unknown user, a bad message."""
    bodies: list[dict[str, Any]] = []
    for user in tenant.state.users.values():
        body: dict[str, Any] = {"user": user.user_principal_name, "source": "hr", "requestId": uuid.uuid4().hex}
        if user.department:
            body["attributes"] = {"department": user.department}
        bodies.append(body)
    bodies.append({"user": "nobody@contoso.onmicrosoft.com", "source": "manual", "requestId": "req-unknown-user"})
    messages = [json.dumps(b) for b in bodies]
    messages.append('{"user": "broken@contoso.onmicrosoft.com", "source": "hr", "requestId": ')  # truncated JSON
    return messages


async def run_demo(console: Console) -> list[StatusRecord]:
    """Run the job and return every status row."""
    from licensing import composition  # noqa: PLC0415  # after the environment is set

    with Azurite() as azurite:
        async with EmulatedTenant(state=TenantState.default(provisioning_delay=1.5)) as tenant:
            os.environ.update(local_settings(azurite.connection_string, tenant.base_url))
            import function_app  # noqa: PLC0415  # imported like the worker does: after settings exist

            services = await composition.services()
            host = LocalHost(function_app.app, azurite.connection_string, retry_visibility=1)
            names = ", ".join(b.function_name for b in host.bindings)
            console.print(f"Azurite on 127.0.0.1:{azurite.queue_port}, tenant at {tenant.base_url}")
            console.print(f"Functions from function_app.py: {names}")
            messages = demo_requests(tenant)
            queue = services.storage.queue(LICENSE_REQUESTS_QUEUE)
            for message in messages:
                await queue.send_message(message)
            console.print(f"Enqueued {len(messages)} onboarding requests on {LICENSE_REQUESTS_QUEUE}")
            started = time.monotonic()
            stats = await host.run_until_idle(limit_seconds=180)
            console.print(
                f"All queues idle after {time.monotonic() - started:.1f} s; runs: {stats.succeeded}, "
                f"failed deliveries: {stats.failed or 0}, poisoned: {stats.poisoned or 0}; "
                f"Graph assignLicense calls: {tenant.state.requests['POST /users/{id}/assignLicense']}"
            )
            rows = [r async for r in services.storage.statuses()]
            await host.close()
            await composition.reset()
    return rows


def render(rows: list[StatusRecord], console: Console) -> None:
    """One row per user and SKU: who, the SKU and its outcome on the left; the disabled plans, each plan's status
    and the reason on the right. Two columns fit an 80-column terminal: the right one wraps between words."""
    table = Table(title="Onboarding results (LicenseStatus table)", show_lines=True, expand=False)
    table.add_column("User, SKU, outcome", no_wrap=True)  # a UPN and a plan name stay whole; the text wraps
    table.add_column("Disabled plans, plan statuses, reason", overflow="fold")
    for row in sorted(rows, key=lambda r: (r.user_principal_name or r.user_key, r.sku)):
        by_status: dict[str, list[str]] = {}
        for name, status in sorted(row.plan_statuses.items()):
            by_status.setdefault(status, []).append(name)
        lines = [f"disabled: {', '.join(row.disabled_plans) or 'none'}"]
        lines += [f"{status}: {', '.join(names)}" for status, names in sorted(by_status.items())]
        lines += [row.reason] if row.outcome != "verified" and row.reason else []
        # Text, not markup: a reason quotes whatever a sender put in a message ("[/]" included)
        who = Text(f"{row.user_principal_name or row.user_key}\n{row.sku} ")
        who.append(row.outcome, style=COLOURS.get(row.outcome, ""))
        table.add_row(who, Text("\n".join(lines)))
    console.print(table)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    console.print("Outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def main() -> None:
    """Entry point of `python -m licensing.dev.demo`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # azure-functions warns at import that queue functions have no HTTP auth level: true and irrelevant here
    logging.getLogger().addFilter(lambda record: "Auth level is not applied" not in record.getMessage())
    console = Console()  # the terminal's width (COLUMNS, or 80 when piped)
    render(asyncio.run(run_demo(console)), console)


if __name__ == "__main__":
    main()
