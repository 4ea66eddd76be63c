"""licensing.adapters.telemetry and the Graph span names: nothing without a connection string, no user in any name."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import azure.monitor.opentelemetry
import pytest
from opentelemetry import trace

from licensing.adapters import telemetry
from licensing.adapters.graph.telemetry import graph_route
from licensing.core.model import Catalog, Sku
from licensing.core.records import LEAVER
from licensing.settings import Settings
from tests.otel import Recorded, recording

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
CATALOG = Catalog((Sku("s1", "EMS", (), enabled=25, consumed=20), Sku("s2", "SPE_E5", (), enabled=3, consumed=4)))


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """Spans and metrics of this test, in memory."""
    with recording() as recorded:
        yield recorded


@pytest.fixture
def distro(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """configure_azure_monitor replaced by a recorder; configure() may run again; OTEL_LOGS_EXPORTER restored."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(azure.monitor.opentelemetry, "configure_azure_monitor", lambda **kw: calls.append(kw))
    monkeypatch.setattr(telemetry._state, "exporting", None)
    monkeypatch.delenv("OTEL_LOGS_EXPORTER", raising=False)
    return calls


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1.0/users/ada.lovelace@contoso.onmicrosoft.com", "/users/{id}"),
        ("/v1.0/users/ada%40contoso.onmicrosoft.com", "/users/{id}"),
        ("/v1.0/users/0f6e0c1a-7d4b-4f55-9c7e-2a1b3c4d5e6f/licenseDetails", "/users/{id}/licenseDetails"),
        ("/v1.0/users/0f6e0c1a-7d4b-4f55-9c7e-2a1b3c4d5e6f/assignLicense", "/users/{id}/assignLicense"),
        ("/v1.0/users", "/users"),
        ("/v1.0/users/delta", "/users/delta"),
        ("/v1.0/subscribedSkus", "/subscribedSkus"),
        ("/v1.0/$batch", "/$batch"),
        ("/v1.0/subscriptions/7f1e/reauthorize", "/subscriptions/{id}/reauthorize"),
        ("/tenant-a/v1.0/users/x", "/users/{id}"),  # an emulator's prefix before the version
        ("/users/x/memberOf", "/users/{id}/{id}"),  # a segment we do not know is never spelled out
    ],
)
def test_graph_route_keeps_endpoints_and_hides_who(path: str, route: str) -> None:
    """Graph paths become templates: endpoint names stay, object ids and UPNs become {id}."""
    assert graph_route(path) == route


def test_configure_without_a_connection_string_sets_up_nothing(distro: list[dict[str, Any]]) -> None:
    """APPLICATIONINSIGHTS_CONNECTION_STRING unset: the distro is not called and no SDK provider appears."""
    assert telemetry.configure(Settings.from_env({})) is False
    assert distro == []
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_configure_with_a_connection_string_exports_traces_and_metrics_only_once(
    distro: list[dict[str, Any]],
) -> None:
    """Set: the distro is called once, with the connection string, no auto-instrumentation, no live metrics or logs."""
    settings = Settings.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION})
    assert telemetry.configure(settings) is True
    assert telemetry.configure(settings) is True
    [call] = distro
    assert call["connection_string"] == CONNECTION
    assert all(not option["enabled"] for option in call["instrumentation_options"].values())
    assert {"azure_sdk", "httpx", "requests"} <= set(call["instrumentation_options"])
    assert (call["enable_live_metrics"], call["enable_performance_counters"]) == (False, False)
    assert os.environ["OTEL_LOGS_EXPORTER"] == "none"  # the Functions host already ships the logs


def test_a_failing_exporter_setup_is_logged_and_the_app_runs_on(
    monkeypatch: pytest.MonkeyPatch, distro: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """configure() never raises: telemetry trouble must not take the functions down."""

    def broken(**_: Any) -> None:
        raise ValueError("bad connection string")

    monkeypatch.setattr(azure.monitor.opentelemetry, "configure_azure_monitor", broken)
    settings = Settings.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": "x"})
    with caplog.at_level(logging.ERROR, logger="licensing.adapters.telemetry"):
        assert telemetry.configure(settings) is False
    assert "running without it" in caplog.text


def test_connection_string_is_a_setting_kept_out_of_repr() -> None:
    """The setting is read (an unresolved Key Vault reference counts as unset) and never printed."""
    settings = Settings.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION})
    assert settings.appinsights_connection_string == CONNECTION
    assert "InstrumentationKey" not in repr(settings)
    unresolved = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "@Microsoft.KeyVault(SecretUri=https://v/secrets/ai/)"}
    assert Settings.from_env(unresolved).appinsights_connection_string is None


def test_seats_gauge_reports_the_last_catalog_read_and_nothing_once_stale(
    otel: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free seats per SKU from the last catalog (never negative); an old catalog is not reported."""
    assert otel.points("licensing.seats.free") == []
    telemetry.catalog_read(CATALOG)
    assert otel.by("licensing.seats.free", "sku") == {"EMS": 5, "SPE_E5": 0}
    monkeypatch.setattr(telemetry, "SEATS_FRESH_SECONDS", -1.0)
    assert otel.points("licensing.seats.free") == []


def test_assignments_count_licenses_not_the_leaver_tombstone(otel: Recorded) -> None:
    """LicenseAssigned and LicenseRemoved rows count by SKU and kind; the leaver row and other kinds do not."""
    telemetry.recorded(kind="LicenseAssigned", sku="EMS")
    telemetry.recorded(kind="LicenseRemoved", sku="EMS")
    telemetry.recorded(kind="LicenseRemoved", sku=LEAVER)
    telemetry.recorded(kind="AssignmentBlocked", sku="EMS")
    assert sorted((a["kind"], a["sku"], v) for a, v in otel.points("licensing.assignments")) == [
        ("assigned", "EMS", 1), ("removed", "EMS", 1),
    ]  # fmt: skip


def test_if_tracing_cannot_be_limited_to_our_spans_it_is_switched_off(
    monkeypatch: pytest.MonkeyPatch, distro: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """Exporting started but the scope filter failed: no span is recorded at all (library spans carry UPNs)."""

    def no_filter() -> None:
        raise AttributeError("_set_tracer_configurator")

    monkeypatch.setattr(telemetry, "_only_ours", no_filter)
    monkeypatch.setattr(telemetry._state, "instruments", telemetry._state.instruments)  # restored afterwards
    settings = Settings.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION})
    with caplog.at_level(logging.ERROR, logger="licensing.adapters.telemetry"):
        assert telemetry.configure(settings) is True  # metrics still go out
    assert "traces are switched off" in caplog.text
    with telemetry.tracer().start_as_current_span("function onboard") as span:
        assert not span.is_recording()
