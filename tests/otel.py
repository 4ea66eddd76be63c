"""In-memory OpenTelemetry for tests: SDK providers handed to licensing.adapters.telemetry, never installed globally."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from licensing.adapters import telemetry


@dataclass
class Recorded:
    """What the app emitted during one test."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        """Finished spans whose name starts with prefix, in the order they ended."""
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def points(self, name: str) -> list[tuple[dict[str, Any], float]]:
        """(attributes, value) of every data point of one metric (counters are cumulative over the test)."""
        found: list[tuple[dict[str, Any], float]] = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [(dict(p.attributes or {}), p.value) for p in metric.data.data_points
                                  if isinstance(p, NumberDataPoint)]  # fmt: skip
        return found

    def total(self, name: str, **attributes: str) -> float:
        """The sum of a metric's points whose attributes include these."""
        return sum(v for attrs, v in self.points(name) if attributes.items() <= attrs.items())

    def by(self, name: str, key: str) -> dict[str, float]:
        """A metric summed per value of one attribute."""
        summed: dict[str, float] = {}
        for attrs, value in self.points(name):
            summed[str(attrs.get(key))] = summed.get(str(attrs.get(key)), 0) + value
        return summed


@contextmanager
def recording() -> Iterator[Recorded]:
    """Point licensing.adapters.telemetry at fresh in-memory providers for the duration."""
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    telemetry.use(tracer_provider, meter_provider)
    try:
        yield Recorded(exporter, reader)
    finally:
        telemetry.use()
        tracer_provider.shutdown()
        meter_provider.shutdown()
