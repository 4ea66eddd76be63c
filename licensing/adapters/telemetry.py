"""Telemetry through the OpenTelemetry API: a tracer and the ``licensing.*`` metrics.

Everything here is a no-op until :func:`configure` installs the Azure Monitor exporter, which it does only
when APPLICATIONINSIGHTS_CONNECTION_STRING is set: without it there is no exporter and no background thread.
Tests hand in their own SDK providers with :func:`use` instead of touching the process-wide ones.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Counter, Meter, MeterProvider, Observation
from opentelemetry.trace import Tracer, TracerProvider

from licensing.core.model import Catalog
from licensing.core.records import LEAVER, REQUEST_LEVEL, EventKind
from licensing.settings import Settings

log = logging.getLogger(__name__)
SCOPE = "licensing"
OUTCOME = "licensing.outcome"  # span attribute: how an invocation ended (assigned, verified, error...)
SEATS_FRESH_SECONDS = 900.0  # an instance reports free seats only from a catalog it read this recently
# The distro instruments these libraries by default. We trace what we own instead: httpx spans would carry
# Graph URLs (UPNs), Azure SDK spans every table key, and the rest are libraries this app does not use.
AUTO_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "httpx2",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)


@dataclass(frozen=True, slots=True)
class Metric:
    """One ``licensing.*`` metric: its name, unit and the description Application Insights shows."""

    name: str
    unit: str
    description: str

    def counter(self, meter: Meter) -> Counter:
        """This metric as a counter."""
        return meter.create_counter(self.name, unit=self.unit, description=self.description)

    def gauge(self, meter: Meter, observe: Callable[[CallbackOptions], Iterable[Observation]]) -> None:
        """This metric as a gauge that ``observe`` reads when the exporter collects."""
        meter.create_observable_gauge(self.name, callbacks=[observe], unit=self.unit, description=self.description)


SEATS_FREE = Metric("licensing.seats.free", "{seat}", "Free seats per SKU (sku) in the last catalog this instance read")
ASSIGNMENTS = Metric(
    "licensing.assignments", "{license}", "Licenses assigned or removed, by SKU (sku) and kind (assigned, removed)"
)
VERIFICATIONS = Metric(
    "licensing.verifications", "{license}", "Verification verdicts by outcome (verified, pending, failed) and SKU"
)
THROTTLED = Metric(
    "licensing.graph.throttled", "{response}", "Graph 429 responses (retried ones too), by method and route"
)
DRIFT = Metric("licensing.sweep.drift", "{finding}", "Drift the sweep found, by kind and read (full, delta)")


@dataclass(frozen=True, slots=True)
class Instruments:
    """The tracer and the instruments every telemetry call goes through."""

    tracer: Tracer
    assignments: Counter
    verifications: Counter
    throttled: Counter
    drift: Counter


def _free_seats(_options: CallbackOptions) -> Iterable[Observation]:
    if _state.seats is None or time.monotonic() - _state.seats[0] > SEATS_FRESH_SECONDS:
        return []  # an idle instance's old catalog would drag the figure back in time
    return [Observation(sku.free, {"sku": sku.part_number}) for sku in _state.seats[1].skus]


def _instruments(tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> Instruments:
    """Instruments from these providers; None means the process-wide ones (no-op proxies until configured)."""
    meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
    SEATS_FREE.gauge(meter, _free_seats)
    return Instruments(
        trace.get_tracer(SCOPE, tracer_provider=tracer_provider),
        ASSIGNMENTS.counter(meter),
        VERIFICATIONS.counter(meter),
        THROTTLED.counter(meter),
        DRIFT.counter(meter),
    )


@dataclass
class _State:
    instruments: Instruments
    seats: tuple[float, Catalog] | None = None
    exporting: bool | None = None  # None until configure() has tried


_state = _State(_instruments(None, None))


def configure(settings: Settings) -> bool:
    """Export to Application Insights when the connection string is set; once per process. True if exporting.

    Telemetry never stops the app: a failure here is logged and the app runs without it.
    """
    if _state.exporting is not None or not settings.appinsights_connection_string:
        return bool(_state.exporting)
    _state.exporting = False
    try:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415  # only when exporting

            # The Functions host already sends every log line to Application Insights; the distro would send them
            # twice (its disable_logging keyword is overwritten from this variable in 1.8).
            os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
            configure_azure_monitor(
                connection_string=settings.appinsights_connection_string,
                instrumentation_options={name: {"enabled": False} for name in AUTO_INSTRUMENTATIONS},
                enable_live_metrics=False,  # the host serves Live Metrics
                enable_performance_counters=False,  # the platform has CPU and memory; not worth the rows
            )
        else:  # the worker configured it (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY): use it, do not stack one
            log.info("an OpenTelemetry SDK is already set up in this process; exporting through it")
    except Exception:
        log.exception("telemetry could not be set up; running without it")
        return False
    try:
        _only_ours()
    except Exception:
        # Exporting has started: without the filter, library spans (kiota's carry the UPN in the URL) would go
        # out too. Stop tracing altogether rather than send them; metrics carry no user and stay on.
        log.exception("could not restrict tracing to the app's own spans; traces are switched off")
        _stop_tracing()
    _state.exporting = True
    log.info("telemetry exported to Application Insights")
    return True


def _only_ours() -> None:
    """Switch off every other library's tracer: kiota alone makes a dozen spans per Graph request (one with the
    full URL, a UPN), azure-core one per storage call. Uses the SDK's TracerConfigurator (experimental in 1.45)."""
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider  # noqa: PLC0415  # only when exporting
    from opentelemetry.sdk.trace import _TracerConfig  # noqa: PLC0415  # the one way to drop a scope's spans

    provider = trace.get_tracer_provider()
    if isinstance(provider, SdkTracerProvider):
        provider._set_tracer_configurator(
            tracer_configurator=lambda scope: _TracerConfig(is_enabled=scope.name == SCOPE)
        )


def _stop_tracing() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()
    _state.instruments = _instruments(trace.NoOpTracerProvider(), None)


def use(tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None) -> None:
    """Send telemetry to these providers (tests); without arguments, back to the process-wide ones."""
    _state.instruments = _instruments(tracer_provider, meter_provider)
    _state.seats = None


def tracer() -> Tracer:
    """The app's tracer."""
    return _state.instruments.tracer


def note_outcome(outcome: str) -> None:
    """Say how the current invocation ended (its span's ``licensing.outcome``)."""
    trace.get_current_span().set_attribute(OUTCOME, outcome)


def recorded(*, kind: EventKind, sku: str) -> None:
    """Count what recording.record wrote: a license assigned or removed (the leaver tombstone is not one)."""
    if kind == "LicenseAssigned":
        _state.instruments.assignments.add(1, {"sku": sku, "kind": "assigned"})
    elif kind == "LicenseRemoved" and sku not in {LEAVER, REQUEST_LEVEL}:
        _state.instruments.assignments.add(1, {"sku": sku, "kind": "removed"})


def verified(*, outcome: str, sku: str) -> None:
    """Count one license's verification verdict."""
    _state.instruments.verifications.add(1, {"outcome": outcome, "sku": sku})


def throttled(*, method: str, route: str) -> None:
    """Count one 429 from Graph."""
    _state.instruments.throttled.add(1, {"method": method, "route": route})


def swept(drift: Mapping[str, int], *, read: str) -> None:
    """Count one sweep run's drift by kind."""
    for kind, count in drift.items():
        _state.instruments.drift.add(count, {"kind": kind, "read": read})


def catalog_read(catalog: Catalog) -> None:
    """Remember the catalog just read from Graph: the seats gauge reports from it (never calling Graph itself)."""
    _state.seats = (time.monotonic(), catalog)
