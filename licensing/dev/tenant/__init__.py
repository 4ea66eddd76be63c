"""An emulated Microsoft Graph v1.0 tenant for development and tests (never deployed).

It serves the endpoints the licensing app calls - subscribedSkus, users (list, get, PATCH),
assignLicense, licenseDetails and $batch - with Graph's JSON shapes, error codes and messages,
paging and throttling, so the real msgraph-sdk works against it unchanged::

    async with EmulatedTenant(state=TenantState.default(), faults=Faults(throttle_rate=0.1)) as tenant:
        adapter.base_url = tenant.base_url

Run it standalone with ``python -m licensing.dev.tenant``.
"""

from licensing.dev.tenant.faults import Fault, Faults
from licensing.dev.tenant.model import Assignment, GraphError, ServicePlan, Sku, User
from licensing.dev.tenant.server import EmulatedTenant, create_app, require_loopback
from licensing.dev.tenant.state import DEFAULT_TENANT_ID, TenantState

__all__ = [
    "DEFAULT_TENANT_ID",
    "Assignment",
    "EmulatedTenant",
    "Fault",
    "Faults",
    "GraphError",
    "ServicePlan",
    "Sku",
    "TenantState",
    "User",
    "create_app",
    "require_loopback",
]
