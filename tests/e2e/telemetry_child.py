"""Run by test_telemetry_export in a process of its own: with a connection string, telemetry.configure() installs
the process-wide OpenTelemetry providers, which the test process must keep free. Settings come from the
environment, as in Azure; the HR webhook and the onboard function run once, then everything is flushed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from azure.functions import HttpRequest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import function_app
from licensing import composition
from licensing.core.signing import sign
from licensing.dev.localhost import user_function
from tests.helpers import queue_message, request


async def main(upn: str) -> dict[str, object]:
    """Build the app (configuring telemetry), post a signed hire, onboard upn, flush; what the functions said."""
    await composition.services()
    body = json.dumps({"events": [{"eventId": "otel-1", "type": "hire", "employeeId": "E-otel-1",
                                   "userPrincipalName": upn, "department": "Sales"}]}).encode()  # fmt: skip
    stamp = str(int(time.time()))
    signature = "sha256=" + sign(os.environ["HR_WEBHOOK_SECRET"], stamp, body)
    headers = {"Content-Type": "application/json", "X-Timestamp": stamp, "X-Signature": signature}
    hr = await user_function(function_app.app, "hr_events")(
        HttpRequest(method="POST", url="http://localhost/api/hr/events", headers=headers, params={}, body=body)
    )
    await user_function(function_app.app, "onboard")(queue_message(request(upn)))
    await composition.reset()
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    assert isinstance(tracer_provider, TracerProvider), "configure() did not install the exporter"
    assert isinstance(meter_provider, MeterProvider)
    return {"hr": hr.status_code, "flushed": tracer_provider.force_flush() and meter_provider.force_flush()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
