"""Queue-triggered functions: onboard, verify, and the poison handlers for both queues.

Each handler imports its use case (and the telemetry adapter, which loads OpenTelemetry) when first called, not
at module level: every Flex Consumption cold start imports function_app to index the functions.
"""

from __future__ import annotations

import logging

import azure.functions as func

from licensing import composition
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.functions.traced import traced_function

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ untyped
CONNECTION = "AzureWebJobsStorage"


def _body(msg: func.QueueMessage) -> str:
    return msg.get_body().decode("utf-8", errors="replace")


@bp.function_name("onboard")
@bp.queue_trigger(arg_name="msg", queue_name=LICENSE_REQUESTS_QUEUE, connection=CONNECTION)
@traced_function
async def onboard(msg: func.QueueMessage) -> None:
    """Assign the policy's licenses; raising (transient errors only) makes the queue redeliver."""
    from licensing.adapters import telemetry  # noqa: PLC0415  # on first call: cold start
    from licensing.services.onboard import onboard as onboard_user  # noqa: PLC0415

    services = await composition.services()
    result = await onboard_user(_body(msg), services, message_id=msg.id or "", delivery=msg.dequeue_count or 1)
    telemetry.note_outcome(result.outcome)
    log.info("onboard message %s: %s", msg.id, result.outcome)


@bp.function_name("verify")
@bp.queue_trigger(arg_name="msg", queue_name=LICENSE_VERIFY_QUEUE, connection=CONNECTION)
@traced_function
async def verify(msg: func.QueueMessage) -> None:
    """Check every plan's provisioning status and record it; pending plans are re-checked later."""
    from licensing.adapters import telemetry  # noqa: PLC0415  # on first call: cold start
    from licensing.services.verify import verify as verify_user  # noqa: PLC0415

    services = await composition.services()
    result = await verify_user(_body(msg), services, message_id=msg.id or "", delivery=msg.dequeue_count or 1)
    telemetry.note_outcome(result.outcome)
    log.info("verify message %s: %s", msg.id, result.outcome)


@bp.function_name("onboard_poison")
@bp.queue_trigger(arg_name="msg", queue_name=f"{LICENSE_REQUESTS_QUEUE}-poison", connection=CONNECTION)
@traced_function
async def onboard_poison(msg: func.QueueMessage) -> None:
    """Record a license request the queue gave up on."""
    from licensing.services.poison import record_poison  # noqa: PLC0415  # on first call: cold start

    services = await composition.services()
    await record_poison(_body(msg), services, queue=LICENSE_REQUESTS_QUEUE, message_id=msg.id or "")


@bp.function_name("verify_poison")
@bp.queue_trigger(arg_name="msg", queue_name=f"{LICENSE_VERIFY_QUEUE}-poison", connection=CONNECTION)
@traced_function
async def verify_poison(msg: func.QueueMessage) -> None:
    """Record a verification the queue gave up on."""
    from licensing.services.poison import record_poison  # noqa: PLC0415  # on first call: cold start

    services = await composition.services()
    await record_poison(_body(msg), services, queue=LICENSE_VERIFY_QUEUE, message_id=msg.id or "")
