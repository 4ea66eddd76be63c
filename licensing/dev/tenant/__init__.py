"""An emulated Microsoft Graph v1.0 tenant for development and tests (never deployed).

It serves the endpoints the licensing app calls - subscribedSkus, users (list, get, PATCH, DELETE, delta),
assignLicense, licenseDetails, Intune managedDevices, $batch and change-notification subscriptions on
users (with the validation handshake, change and lifecycle notifications to loopback webhooks) - with
Graph's JSON shapes, error codes and messages, paging and throttling, so the real msgraph-sdk works
against it unchanged. How strictly it follows Graph's documentation is a Strictness (strict.py)::

    async with EmulatedTenant(state=TenantState.default(), faults=Faults(throttle_rate=0.1)) as tenant:
        adapter.base_url = tenant.base_url

For benchmarks, ``generate_tenant(100_000)`` builds a large tenant with known drift (see generate.py).
Run it standalone with ``python -m licensing.dev.tenant [--generate N]``.
"""

from licensing.dev.tenant.faults import Fault, Faults
from licensing.dev.tenant.generate import DRIFT_KINDS, generate_tenant
from licensing.dev.tenant.model import Assignment, GraphError, ServicePlan, Sku, User
from licensing.dev.tenant.server import EmulatedTenant, create_app, require_loopback
from licensing.dev.tenant.state import DEFAULT_TENANT_ID, TenantState
from licensing.dev.tenant.strict import STRICT_BY_DEFAULT, Strictness
from licensing.dev.tenant.subscriptions import MAX_USER_MINUTES, Subscription
from licensing.dev.tenant.webhooks import Delivery, Webhooks

__all__ = [
    "DEFAULT_TENANT_ID",
    "DRIFT_KINDS",
    "MAX_USER_MINUTES",
    "STRICT_BY_DEFAULT",
    "Assignment",
    "Delivery",
    "EmulatedTenant",
    "Fault",
    "Faults",
    "GraphError",
    "ServicePlan",
    "Sku",
    "Strictness",
    "Subscription",
    "TenantState",
    "User",
    "Webhooks",
    "create_app",
    "generate_tenant",
    "require_loopback",
]
