"""The sweep benchmark's tenant process: a generated tenant, as strict as Graph's documentation, with Intune devices.

Devices go to the users who hold a license with Intune enabled (Intune enrolment needs one): one to three each,
and 15 x licenses + 2 (over the limit) for one user in a thousand of all users. They are built straight into the
tenant's device store, as the admin API would add them one user at a time. Prints the base URL, then serves
until terminated, like ``python -m licensing.dev.tenant``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid

from licensing.dev.tenant.__main__ import faults_from, parse_args
from licensing.dev.tenant.generate import generate_tenant
from licensing.dev.tenant.model import Device
from licensing.dev.tenant.server import EmulatedTenant
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.strict import Strictness

INTUNE = frozenset({"INTUNE_A", "INTUNE_EDU"})
PER_LICENSE = 15


def device_id(user_id: str, n: int) -> str:
    """The n-th device's id, as the tenant's own store derives it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"device:{user_id}:{n}"))


def enrol_devices(state: TenantState) -> int:
    """Enrol the devices described above; returns how many."""
    devices = state.managed_devices.devices
    for i, user in enumerate(state.users.values()):
        licenses = sum(
            any(p.name in INTUNE and p.id not in a.disabled_plans for p in state.skus[a.sku_id].plans)
            for a in user.assignments
        )
        count = PER_LICENSE * licenses + 2 if i % 1000 == 1 else (1 + i % 3 if licenses else 0)
        upn, now = user.user_principal_name, state.clock()
        devices.extend(
            Device(device_id(user.id, n), user.id, upn, f"DEV-{i:06d}-{n}", "Windows", now) for n in range(count)
        )
    return len(devices)


async def serve() -> None:
    """Generate, enrol, serve until SIGTERM."""
    args = parse_args(sys.argv[1:])
    delay = args.provisioning_delay
    state, _ = generate_tenant(
        args.generate, seed=7, drift_fraction=args.drift, provisioning_delay=delay, strictness=Strictness()
    )
    enrol_devices(state)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with EmulatedTenant(state, faults_from(args), host=args.host, port=args.port) as tenant:
        print(tenant.base_url, flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve())
