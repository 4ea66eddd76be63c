"""Reading app settings: numbers, flags, secrets, the tenant id, loopback URLs, the storage connection. Errors name
the fix."""

from __future__ import annotations

import ipaddress
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from licensing.core.errors import PermanentError
from licensing.settings.redaction import Redacted

log = logging.getLogger(__name__)
STORAGE_SETTING = "AzureWebJobsStorage"

# Who signs in to storage: "managed-identity" (the Functions convention <CONNECTION>__credential=managedidentity)
# or "auto" (unset: the managed identity in Azure, the signed-in admin elsewhere; see adapters/identity.py).
StorageCredential = Literal["auto", "managed-identity"]
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")  # Azure's rule for storage account names


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


def storage_credential(env: Mapping[str, str], name: str) -> StorageCredential:
    """``<CONNECTION>__credential``: unset is auto; ``managedidentity`` (any case, as the Functions host reads it)
    forces the managed identity; anything else is refused."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return "auto"
    if raw.lower() == "managedidentity":
        return "managed-identity"
    raise SettingsError(
        f"{name}={raw!r} is not valid; use managedidentity (the app's managed identity) or leave it unset "
        "(auto: the managed identity in Azure, your az login elsewhere)."
    )


def storage_account(env: Mapping[str, str], name: str) -> str | None:
    """``<CONNECTION>__accountName``: a storage account name (3-24 lower-case letters and digits), or None."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not _ACCOUNT_NAME.fullmatch(raw):
        raise SettingsError(
            f"{name}={raw!r} is not a storage account name (3-24 lower-case letters and digits); use the "
            "account's name alone, e.g. the value of `azd env get-value AZURE_STORAGE_ACCOUNT_NAME`."
        )
    return raw


@dataclass(frozen=True, slots=True, repr=False)
class StorageSettings(Redacted):
    """Either a connection string or identity-based service URIs (``AzureWebJobsStorage__*``, or the URIs
    ``__accountName`` implies), with who signs in: ``__credential=managedidentity`` forces the managed identity;
    unset is auto (managed identity in Azure, the signed-in admin elsewhere: adapters/identity.py)."""

    connection_string: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    blob_service_uri: str | None = None
    client_id: str | None = None
    credential: StorageCredential = "auto"

    @property
    def account(self) -> str:
        """The storage account's name (the first label of the table endpoint's host), for messages."""
        host = urlparse(self.table_service_uri or "").hostname or ""
        return host.split(".", 1)[0] or "the storage account"


def storage_settings(env: Mapping[str, str]) -> StorageSettings | None:
    """AzureWebJobsStorage as a connection string, or its identity-based form; None when neither is given."""
    conn = env.get(STORAGE_SETTING)
    if conn:
        return StorageSettings(connection_string=conn)
    credential = storage_credential(env, f"{STORAGE_SETTING}__credential")
    account = storage_account(env, f"{STORAGE_SETTING}__accountName")
    # The Functions shorthand: one account name stands for its three public endpoints; an explicit URI still wins.
    uris = {
        service: env.get(f"{STORAGE_SETTING}__{service}ServiceUri")
        or (f"https://{account}.{service}.core.windows.net" if account else None)
        for service in ("queue", "table", "blob")
    }
    if uris["queue"] and uris["table"]:
        return StorageSettings(
            queue_service_uri=uris["queue"],
            table_service_uri=uris["table"],
            blob_service_uri=uris["blob"],
            client_id=env.get(f"{STORAGE_SETTING}__clientId") or None,
            credential=credential,
        )
    return None
