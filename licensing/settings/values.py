"""Reading one app setting's value: numbers, flags, secrets, the tenant id, loopback URLs. Errors name the fix."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Mapping
from urllib.parse import urlparse

from licensing.core.errors import PermanentError

log = logging.getLogger(__name__)


class SettingsError(PermanentError):
    """A setting is missing or invalid; the message names it and says how to fix it."""


def tenant_id(env: Mapping[str, str]) -> str | None:
    raw = (env.get("LICENSING_TENANT_ID") or "").strip()
    if not raw:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise SettingsError(
            f"LICENSING_TENANT_ID={raw!r} is not a tenant id; use the directory's GUID (Entra ID > Overview)"
        ) from None


def secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret setting; an unresolved Key Vault reference counts as missing (App Service passes the
    literal "@Microsoft.KeyVault(...)" text when it cannot resolve one), never as the secret itself."""
    value = env.get(name) or None
    if value and value.startswith("@Microsoft.KeyVault("):
        log.error("%s is a Key Vault reference the platform could not resolve; treating it as unset", name)
        return None
    return value


def number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; set it to e.g. {default:g}.") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative; set it to e.g. {default:g}.")
    return value


def flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; use true or false.")


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
