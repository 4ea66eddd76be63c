"""Typed settings, read once from the environment (app settings in Azure, local.settings.json locally)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from licensing.core.cron import CronError, validate_ncrontab
from licensing.settings.redaction import SECRET, Redacted
from licensing.settings.values import (
    STORAGE_SETTING,
    SettingsError,
    StorageSettings,
    flag,
    is_loopback_url,
    number,
    secret,
    storage_settings,
    tenant_id,
)

__all__ = [
    "APP_ROOT",
    "GRAPH_RETRY_WAIT_CAP",
    "LIMITS",
    "SECRET_SETTINGS",
    "SETTING_NAMES",
    "STORAGE_SETTING",
    "Settings",
    "SettingsError",
    "StorageSettings",
]

# auto: the managed identity when running in Azure, else the signed-in admin (adapters/identity.py decides).
GraphAuth = Literal["auto", "managed-identity", "default", "none"]
GRAPH_AUTH_CHOICES: tuple[GraphAuth, ...] = ("auto", "managed-identity", "default", "none")
TELEMETRY_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"  # unset: no telemetry exporter at all
log = logging.getLogger(__name__)
APP_ROOT = Path(__file__).resolve().parents[2]  # licensing/settings/__init__.py -> the app root


# Field -> app setting, for every tunable whose type follows from its default.
TUNABLES: dict[str, str] = {
    "graph_timeout_seconds": "LICENSING_GRAPH_TIMEOUT_SECONDS",
    "graph_retry_delay_seconds": "LICENSING_GRAPH_RETRY_DELAY_SECONDS",
    "set_usage_location": "LICENSING_SET_USAGE_LOCATION",
    "catalog_ttl_seconds": "LICENSING_CATALOG_TTL_SECONDS",
    "verify_delay_seconds": "LICENSING_VERIFY_DELAY_SECONDS",
    "verify_max_backoff_seconds": "LICENSING_VERIFY_MAX_BACKOFF_SECONDS",
    "verify_deadline_minutes": "LICENSING_VERIFY_DEADLINE_MINUTES",
    "blocked_retry_seconds": "LICENSING_BLOCKED_RETRY_SECONDS",
    "blocked_max_attempts": "LICENSING_BLOCKED_MAX_ATTEMPTS",
    "not_found_retry_seconds": "LICENSING_NOT_FOUND_RETRY_SECONDS",
    "not_found_max_attempts": "LICENSING_NOT_FOUND_MAX_ATTEMPTS",
    "hr_hire_lead_hours": "HR_HIRE_LEAD_HOURS",
    "hr_leaver_grace_days": "HR_LEAVER_GRACE_DAYS",
    "sweep_full_every_days": "SWEEP_FULL_EVERY_DAYS",
    "sweep_fix_rate_per_minute": "SWEEP_FIX_RATE_PER_MINUTE",
    "write_budget": "LICENSING_WRITE_BUDGET",
    "write_window_seconds": "LICENSING_WRITE_WINDOW_SECONDS",
    "low_seat_threshold": "LICENSING_LOW_SEAT_THRESHOLD",
    "device_limit_check": "LICENSING_DEVICE_LIMIT_CHECK",
}
SECRET_SETTINGS = ("HR_WEBHOOK_SECRET", "HR_WEBHOOK_SECRET_PREVIOUS", "GRAPH_NOTIFICATION_CLIENT_STATE")
# The longest wait before one in-process retry of a Graph read (adapters/graph/client.py: a longer Retry-After fails
# the call as transient and the queue redelivers). The SDK adds up to 2 s of backoff and jitter to its base delay.
GRAPH_RETRY_WAIT_CAP = 10.0
# Upper bounds: the retry base delay within the cap; the attempt timeout so one read's worst case (client.py) stays
# below the per-user lease; a queue delay over 7 days is refused by the platform.
LIMITS: dict[str, float] = {
    "LICENSING_GRAPH_RETRY_DELAY_SECONDS": GRAPH_RETRY_WAIT_CAP - 2,
    "LICENSING_GRAPH_TIMEOUT_SECONDS": 60,
    "LICENSING_VERIFY_DELAY_SECONDS": 7 * 86400 - 60,
    "LICENSING_VERIFY_MAX_BACKOFF_SECONDS": 7 * 86400 - 60,
    "LICENSING_BLOCKED_RETRY_SECONDS": 7 * 86400 - 60,
    "LICENSING_NOT_FOUND_RETRY_SECONDS": 7 * 86400 - 60,
}
# Every app setting the code reads (the infra and local.settings.sample.json must list these).
SETTING_NAMES: tuple[str, ...] = (
    STORAGE_SETTING,
    "LICENSING_POLICY_PATH",
    "LICENSING_GRAPH_URL",
    "LICENSING_GRAPH_AUTH",
    "AZURE_CLIENT_ID",
    "LICENSING_TENANT_ID",
    "GRAPH_NOTIFICATION_URL",
    "GRAPH_LIFECYCLE_URL",
    "SWEEP_SCHEDULE",
    "SWEEP_MODE",
    "HR_TIMEZONE",
    TELEMETRY_SETTING,
    *SECRET_SETTINGS,
    *TUNABLES.values(),
)


@dataclass(frozen=True, slots=True, repr=False)
class Settings(Redacted):
    """Every setting the app reads. Build it with :meth:`from_env`."""

    storage: StorageSettings | None
    policy_path: Path
    graph_url: str = "https://graph.microsoft.com/v1.0"
    graph_auth: GraphAuth = "auto"
    graph_client_id: str | None = None
    # The directory this app serves: Graph notifications from any other tenant are ignored (None: not checked).
    tenant_id: str | None = None
    graph_timeout_seconds: float = 30.0
    graph_retry_delay_seconds: float = 3.0
    set_usage_location: bool = True
    catalog_ttl_seconds: float = 60.0
    verify_delay_seconds: int = 60
    verify_max_backoff_seconds: int = 3600
    verify_deadline_minutes: int = 1440
    blocked_retry_seconds: int = 900
    blocked_max_attempts: int = 8
    not_found_retry_seconds: int = 120
    not_found_max_attempts: int = 3
    hr_webhook_secrets: tuple[str, ...] = field(default=(), metadata=SECRET)
    hr_hire_lead_hours: int = 0
    hr_leaver_grace_days: int = 0
    hr_timezone: str = "UTC"
    graph_notification_url: str | None = None
    graph_lifecycle_url: str | None = None
    graph_client_state: str | None = field(default=None, metadata=SECRET)
    sweep_schedule: str = "0 0 2 * * *"
    sweep_mode: Literal["report", "remediate"] = "report"
    sweep_full_every_days: int = 7
    sweep_fix_rate_per_minute: int = 300
    write_budget: int = 3000
    write_window_seconds: int = 150
    low_seat_threshold: int = 5
    # The sweep's full reads count Intune managed devices per user (needs DeviceManagementManagedDevices.Read.All).
    device_limit_check: bool = False
    appinsights_connection_string: str | None = field(default=None, metadata=SECRET)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raise SettingsError naming the bad setting and the fix."""
        env = os.environ if env is None else env
        defaults = {f.name: f.default for f in fields(cls)}
        graph_url = str(env.get("LICENSING_GRAPH_URL", defaults["graph_url"])).rstrip("/")
        auth = env.get("LICENSING_GRAPH_AUTH") or "auto"
        if auth not in GRAPH_AUTH_CHOICES:
            raise SettingsError(
                f"LICENSING_GRAPH_AUTH={auth!r} is not valid; use one of {', '.join(GRAPH_AUTH_CHOICES)}."
            )
        if auth == "none" and not is_loopback_url(graph_url):
            raise SettingsError(
                "LICENSING_GRAPH_AUTH=none is only allowed with a loopback LICENSING_GRAPH_URL "
                f"(an emulator), not {graph_url!r}; use auto, managed-identity or default for a real tenant."
            )
        if tunables_over_limit := [n for n, limit in LIMITS.items() if number(env, n, 0) > limit]:
            name = tunables_over_limit[0]
            raise SettingsError(f"{name}={env[name]!r} is above its limit of {LIMITS[name]:g}; lower it.")
        schedule = env.get("SWEEP_SCHEDULE") or "0 0 2 * * *"
        try:
            validate_ncrontab(schedule)
        except CronError as exc:
            raise SettingsError(f"SWEEP_SCHEDULE: {exc}") from None
        sweep_mode = env.get("SWEEP_MODE") or "report"
        if sweep_mode not in {"report", "remediate"}:
            raise SettingsError(f"SWEEP_MODE={sweep_mode!r} is not valid; use report (record drift only) or remediate")
        hr_timezone = env.get("HR_TIMEZONE") or "UTC"
        try:
            ZoneInfo(hr_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"HR_TIMEZONE={hr_timezone!r} is not an IANA time zone; use e.g. Europe/Berlin"
            ) from None
        policy = Path(env.get("LICENSING_POLICY_PATH", "licensing-policy.json"))
        tunables: dict[str, float | int | bool] = {}
        for field_name, env_name in TUNABLES.items():
            default = defaults[field_name]
            if isinstance(default, bool):
                tunables[field_name] = flag(env, env_name, default=default)
            elif isinstance(default, int):
                tunables[field_name] = int(number(env, env_name, default))
            elif isinstance(default, float):
                tunables[field_name] = number(env, env_name, default)
        return cls(
            storage=storage_settings(env),
            policy_path=policy if policy.is_absolute() else APP_ROOT / policy,
            graph_url=graph_url,
            graph_auth=auth,
            graph_client_id=env.get("AZURE_CLIENT_ID") or None,
            tenant_id=tenant_id(env),
            # Two secrets at once so the HR system can rotate without downtime: new first, previous second.
            hr_webhook_secrets=tuple(s for s in (secret(env, n) for n in SECRET_SETTINGS[:2]) if s),
            graph_notification_url=secret(env, "GRAPH_NOTIFICATION_URL"),  # carry a function key: Key Vault
            graph_lifecycle_url=secret(env, "GRAPH_LIFECYCLE_URL"),
            graph_client_state=secret(env, "GRAPH_NOTIFICATION_CLIENT_STATE"),
            appinsights_connection_string=secret(env, TELEMETRY_SETTING),  # a Key Vault reference works too
            hr_timezone=hr_timezone,
            sweep_schedule=schedule,
            sweep_mode=sweep_mode,  # type: ignore[arg-type]  # checked just above
            **tunables,  # type: ignore[arg-type]
        )

    def require_storage(self) -> StorageSettings:
        """The storage settings, or SettingsError saying how to give them (the CLI may run without)."""
        if self.storage is None:
            raise SettingsError(
                f"{STORAGE_SETTING} is not set: give a connection string (UseDevelopmentStorage=true with "
                f"Azurite), {STORAGE_SETTING}__accountName (the deployed account: azd env get-value "
                f"AZURE_STORAGE_ACCOUNT_NAME), or identity-based {STORAGE_SETTING}__queueServiceUri and "
                "__tableServiceUri."
            )
        return self.storage
