"""A span per function invocation, for any trigger (queue, HTTP, timer).

Put ``@traced_function`` directly above ``async def``, under the binding decorators, so the blueprint registers
the traced function. The worker loads it by ``inspect.signature`` and ``typing.get_type_hints``: it shows the
handler's parameters and annotations (``functools.wraps``; string annotations resolve in the handler's module via
``__wrapped__``) plus an optional keyword-only ``context: func.Context``, which the worker fills with the
invocation context. Its traceparent makes this span a child of the host's invocation, so both share one operation
id in Application Insights. Callers that pass no context (tests, the local host) get a root span.

OpenTelemetry (and our telemetry adapter) load on the first invocation: importing this module, which every cold
start does through function_app, loads neither.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import azure.functions as func

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

P = ParamSpec("P")
R = TypeVar("R")
CONTEXT = "context"  # the worker passes the invocation context to a parameter of this name and type
TRACED = "__licensing_traced__"


def traced_function(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap an async handler in a span ``function <name>``: trigger, message id and dequeue count (queues), HTTP
    status (HTTP), outcome (``licensing.outcome``: the handler's own via telemetry.note_outcome, else ok / error);
    an exception is recorded on the span, marked as an error and raised again."""
    name = handler.__name__
    signature = inspect.signature(handler)
    wants_context = CONTEXT in signature.parameters

    @functools.wraps(handler)
    async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        # OpenTelemetry loads on the first invocation, not when the worker imports function_app (cold start).
        from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: PLC0415

        from licensing.adapters import telemetry  # noqa: PLC0415

        context = cast("func.Context | None", kwargs.get(CONTEXT) if wants_context else kwargs.pop(CONTEXT, None))
        attributes = {telemetry.OUTCOME: "ok", **_describe(name, context, (*args, *kwargs.values()))}
        with telemetry.tracer().start_as_current_span(
            f"function {name}",
            context=_parent(context),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,  # set below: the exception's type and where, never its message
            set_status_on_exception=False,
        ) as span:
            try:
                result = await handler(*args, **kwargs)
            except BaseException as exc:  # cancellation too: the invocation did not complete
                span.set_attribute(telemetry.OUTCOME, "error")
                # The type and where, never the message: ours name the user ("Graph refused to read user ada@…").
                where = "".join(traceback.format_tb(exc.__traceback__)) + type(exc).__name__
                span.record_exception(
                    exc,
                    escaped=True,
                    attributes={"exception.message": type(exc).__name__, "exception.stacktrace": where},
                )
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            if isinstance(result, func.HttpResponse):
                _http_outcome(span, result.status_code)
            return result

    if not wants_context:
        extra = inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=func.Context)
        parameters = [*signature.parameters.values(), extra]
        traced.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]  # read by inspect
        traced.__annotations__ = {**handler.__annotations__, CONTEXT: func.Context}  # a copy: wraps shares the dict
    setattr(traced, TRACED, True)  # a marker: a test checks that every indexed function is traced
    return traced


def is_traced(function: Callable[..., Any]) -> bool:
    """Whether a function went through traced_function."""
    return bool(getattr(function, TRACED, False))


def _parent(context: func.Context | None) -> Context | None:
    """The host's invocation trace (W3C traceparent) as the parent; None: the current context."""
    if context is None or not context.trace_context.trace_parent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: PLC0415

    carrier = {"traceparent": context.trace_context.trace_parent, "tracestate": context.trace_context.trace_state}
    return TraceContextTextMapPropagator().extract(carrier)


def _describe(name: str, context: func.Context | None, arguments: Iterable[object]) -> dict[str, str | int | bool]:
    """Span attributes from the trigger argument: ids and counts only, never a body, header or URL (keys live there)."""
    attributes: dict[str, str | int | bool] = {"faas.name": name}
    if context is not None:
        attributes["faas.invocation_id"] = context.invocation_id
    for argument in arguments:
        if isinstance(argument, func.QueueMessage):
            attributes |= {
                "faas.trigger": "pubsub",
                "licensing.trigger": "queue",
                "licensing.message_id": argument.id or "",
                "licensing.dequeue_count": argument.dequeue_count or 1,
            }
        elif isinstance(argument, func.HttpRequest):
            attributes |= {"faas.trigger": "http", "licensing.trigger": "http", "http.request.method": argument.method}
        elif isinstance(argument, func.TimerRequest):
            attributes |= {
                "faas.trigger": "timer",
                "licensing.trigger": "timer",
                "licensing.past_due": argument.past_due,
            }
    return attributes


def _http_outcome(span: Span, status: int) -> None:
    # Both loaded by now (traced() imported them); imported here, not at the top, for the cold start.
    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

    from licensing.adapters.telemetry import OUTCOME  # noqa: PLC0415

    span.set_attribute("http.response.status_code", status)
    if status >= 500:  # our 503 "retry shortly": the sender retries, but it is a failure here
        span.set_attribute(OUTCOME, "unavailable")
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
    elif status >= 400:
        span.set_attribute(OUTCOME, "rejected")
