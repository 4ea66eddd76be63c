"""Graph calls and their failures: every SDK call goes through ``call``, which translates ODataError (and transport
failures) into our permanent or transient errors. Part of the Graph adapter; nothing else catches SDK errors."""

from __future__ import annotations

from typing import Any

import httpx
from azure.core.exceptions import ClientAuthenticationError
from kiota_abstractions.api_error import APIError

from licensing.adapters.graph.client import ForeignLink
from licensing.adapters.graph.telemetry import graph_call
from licensing.core.errors import (
    AccessDenied,
    AssignmentRejected,
    LicensingError,
    PermanentError,
    SeatsExhausted,
    TransientError,
    UsageLocationMissing,
    UserNotFound,
)


async def call(what: str, pending: Any) -> Any:  # noqa: ANN401  # the SDK's return types are untyped for mypy
    """Await one SDK call (in its own span) and translate its failures into our errors."""
    with graph_call() as span:
        try:
            return await pending
        except APIError as exc:
            raise span.failed(translate(exc, what)) from None
        except ForeignLink as exc:  # the client refused to send it (client.GraphOriginGuard): already our error
            raise span.failed(exc) from None
        except ClientAuthenticationError as exc:
            # No token: IMDS not reachable yet, or an admin who has not run `az login`. Retrying may help.
            no_token = TransientError(
                f"could not get a Graph token to {what}: {type(exc).__name__} (in Azure: check the managed identity; "
                "elsewhere: run az login, or set LICENSING_GRAPH_AUTH to force one credential)"
            )
            raise span.failed(no_token) from None
        except httpx.TimeoutException:
            raise span.failed(TransientError(f"Graph timed out while trying to {what}")) from None
        except httpx.TransportError as exc:
            unreachable = f"Graph unreachable while trying to {what}: {type(exc).__name__}"
            raise span.failed(TransientError(unreachable)) from None


def translate(exc: APIError, what: str) -> LicensingError:  # noqa: PLR0911  # a flat decision table
    """Map a Graph error to permanent vs transient, keeping Graph's code and message."""
    status = exc.response_status_code or 0
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or "unknown"
    message = getattr(error, "message", None) or str(exc)
    text = f"Graph refused to {what}: {status} {code}: {message}"
    lowered = message.lower()
    if status == 404:
        return UserNotFound(text)
    if status == 401:  # an expired or not yet valid token: a fresh one on redelivery usually fixes it
        return TransientError(text)
    if status == 403:
        return AccessDenied(f"{text} (grant the app's identity the Graph permission this call needs)")
    if status == 400 and "usage location" in lowered:
        return UsageLocationMissing(text)
    if status == 400 and "does not have any available licenses" in lowered:
        return SeatsExhausted(text, part_numbers=())
    if status in {408, 429} or status >= 500:
        return TransientError(text)
    if status == 400:
        return AssignmentRejected(text)
    return PermanentError(text)
