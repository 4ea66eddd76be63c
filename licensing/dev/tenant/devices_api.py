"""GET /deviceManagement/managedDevices of Graph v1.0, routed, counted and faulted by graph_api.dispatch.

https://learn.microsoft.com/graph/api/intune-devices-manageddevice-list: needs
DeviceManagementManagedDevices.Read.All (403 without it: ``Faults.devices_forbidden`` or
``Strictness.devices_forbidden``); pages of 100 by default, ``$top`` honoured up to 1000 (a larger
one is served as 1000: the cap is our reading of Intune's page limit), ``@odata.nextLink`` to go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from licensing.dev.tenant.devices import parse_device_select, render_device
from licensing.dev.tenant.model import GraphError
from licensing.dev.tenant.protocol import Context, GraphRequest, GraphResponse, ok
from licensing.dev.tenant.query import offset_of, skiptoken

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def list_managed_devices(ctx: Context, req: GraphRequest, _: Mapping[str, str]) -> GraphResponse:
    """GET /deviceManagement/managedDevices with $select, $top and $skiptoken paging."""
    if ctx.faults.devices_forbidden or ctx.state.strictness.devices_forbidden:
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    select = parse_device_select(req.query.get("$select"))
    page, next_position = ctx.state.managed_devices.page(offset_of(req.query.get("$skiptoken")), _top(req))
    fragment = "deviceManagement/managedDevices" + (f"({','.join(select)})" if select else "")
    body: dict[str, Any] = {"@odata.context": f"{req.base_url}/$metadata#{fragment}"}
    if next_position is not None:
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"} | {"$skiptoken": skiptoken(next_position)}
        query = urlencode(params, quote_via=quote, safe="$,")
        body["@odata.nextLink"] = f"{req.base_url}/deviceManagement/managedDevices?{query}"
    body["value"] = [render_device(d, select) for d in page]
    return ok(body)


def _top(req: GraphRequest) -> int:
    raw = req.query.get("$top")
    if raw is None:
        return DEFAULT_PAGE
    try:
        top = int(raw)
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for $top query option found.") from None
    if top < 1:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for $top query option found.")
    return min(top, MAX_PAGE)
