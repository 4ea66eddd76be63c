"""Intune managed devices: the records GET /deviceManagement/managedDevices lists, and their JSON.

Follows https://learn.microsoft.com/graph/api/intune-devices-manageddevice-list: a paged collection
(``@odata.nextLink``) of managedDevice, of which the licensing app reads id, userId, deviceName and
operatingSystem (a user license covers up to 15 devices). The emulator keeps devices in the order
added; a page token is a position in that order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from licensing.dev.tenant.model import Device, User, iso, select_names

_OPERATING_SYSTEMS = ("Windows", "iOS", "Android", "macOS")
_PROPERTIES: dict[str, Callable[[Device], Any]] = {
    "id": lambda d: d.id,
    "userId": lambda d: d.user_id,
    "deviceName": lambda d: d.device_name,
    "operatingSystem": lambda d: d.operating_system,
    "userPrincipalName": lambda d: d.user_principal_name,
    "enrolledDateTime": lambda d: iso(d.enrolled_at),
    "managedDeviceOwnerType": lambda _: "company",
    "complianceState": lambda _: "compliant",
}
_BY_LOWER = {name.lower(): name for name in _PROPERTIES}


class DeviceStore:
    """The tenant's managed devices, in the order enrolled."""

    def __init__(self) -> None:
        self.devices: list[Device] = []

    def add(self, user: User, count: int, now: float) -> list[Device]:
        """Enrol ``count`` devices for a user (ids derived from the user and position: reproducible)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        first = sum(1 for d in self.devices if d.user_id == user.id)
        stem = user.user_principal_name.split("@")[0].replace(".", "-").upper()[:10]
        added = [
            Device(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"device:{user.id}:{n}")),
                user_id=user.id,
                user_principal_name=user.user_principal_name,
                device_name=f"{stem}-{n + 1:02d}",
                operating_system=_OPERATING_SYSTEMS[n % len(_OPERATING_SYSTEMS)],
                enrolled_at=now,
            )
            for n in range(first, first + count)
        ]
        self.devices.extend(added)
        return added

    def page(self, start: int, size: int) -> tuple[list[Device], int | None]:
        """Up to ``size`` devices from position ``start``, and where the next page starts (None at the end)."""
        end = start + size
        return self.devices[start:end], (end if end < len(self.devices) else None)


def parse_device_select(raw: str | None) -> list[str] | None:
    """$select as canonical managedDevice property names, None if absent."""
    return select_names(raw, _BY_LOWER, entity="microsoft.graph.managedDevice", code="BadRequest")


def render_device(device: Device, select: list[str] | None) -> dict[str, Any]:
    """One managedDevice as Graph returns it: the selected properties, or all the emulator keeps."""
    return {name: _PROPERTIES[name](device) for name in (select or _PROPERTIES)}
