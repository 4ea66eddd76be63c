"""A lean cold start: importing function_app (what the worker does to index) loads no SDK and no use case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

APP_ROOT = Path(__file__).resolve().parents[2]
# Loaded on the first invocation instead: the Storage and Graph SDKs (with aiohttp and httpx under them),
# OpenTelemetry, Jinja2 for the status page, and pydantic for the messages, the policy and HR events.
HEAVY = (
    "aiohttp",
    "azure.core",
    "azure.storage",
    "azure.data",
    "azure.identity",
    "azure.monitor",
    "httpx",
    "msgraph",
    "msgraph_core",
    "kiota_abstractions",
    "kiota_http",
    "opentelemetry",
    "jinja2",
    "pydantic",
    "licensing.adapters",
    "licensing.functions.status_render",
)
LIGHT_SERVICES = ["licensing.services", "licensing.services.reply"]  # the dataclass HTTP handlers answer with


def modules_after_import(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing this one."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=APP_ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def within(module: str, packages: tuple[str, ...]) -> bool:
    """Whether a module is one of these packages or inside one."""
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def test_importing_function_app_loads_no_sdk_adapter_or_use_case() -> None:
    """The worker's index import stays lean: SDKs, adapters and use cases wait for the first invocation."""
    loaded = modules_after_import("function_app")
    assert "function_app" in loaded
    assert sorted(m for m in loaded if within(m, HEAVY)) == []
    assert sorted(m for m in loaded if within(m, ("licensing.services",))) == LIGHT_SERVICES
