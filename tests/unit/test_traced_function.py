"""@traced_function: the worker still indexes and loads every function, and each invocation is one span."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from opentelemetry.trace import SpanKind, StatusCode

import function_app
from licensing.adapters import telemetry
from licensing.dev.localhost import indexed_functions
from licensing.functions.traced import is_traced, traced_function
from tests.otel import Recorded, recording

TRIGGER_TYPES: dict[str, type] = {
    "queueTrigger": func.QueueMessage, "httpTrigger": func.HttpRequest, "timerTrigger": func.TimerRequest,
}  # fmt: skip
# What each function of ours binds: trigger type, argument name, and the settings that locate its trigger.
BINDINGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "onboard": ("queueTrigger", "msg", {"queueName": "license-requests", "connection": "AzureWebJobsStorage"}),
    "verify": ("queueTrigger", "msg", {"queueName": "license-verify", "connection": "AzureWebJobsStorage"}),
    "onboard_poison": ("queueTrigger", "msg", {"queueName": "license-requests-poison"}),
    "verify_poison": ("queueTrigger", "msg", {"queueName": "license-verify-poison"}),
    "hr_events": ("httpTrigger", "req", {"route": "hr/events", "methods": ["POST"], "authLevel": "function"}),
    "graph_notifications": ("httpTrigger", "req", {"route": "graph/notifications", "methods": ["POST"]}),
    "graph_lifecycle": ("httpTrigger", "req", {"route": "graph/lifecycle", "methods": ["POST"]}),
    "status_page": ("httpTrigger", "req", {"route": "status", "methods": ["GET"], "authLevel": "function"}),
    "release_scheduled": ("timerTrigger", "timer", {"schedule": "0 */15 * * * *", "useMonitor": True}),
    "graph_subscription": ("timerTrigger", "timer", {"schedule": "0 7 * * * *"}),
    "daily_snapshot": ("timerTrigger", "timer", {"schedule": "0 55 23 * * *", "useMonitor": True}),
    "sweep": ("timerTrigger", "timer", {"schedule": "%SWEEP_SCHEDULE%", "runOnStartup": False}),
}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """Spans and metrics of this test, in memory."""
    with recording() as recorded:
        yield recorded


def _plain(value: object) -> object:
    """Enum members as their values, recursively (the indexer's dicts hold enums)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


def worker_would_load(function: Any) -> None:
    """The checks the Python worker's Registry.add_indexed_function makes before a function may run (ported)."""
    user = function.get_user_function()
    params = dict(inspect.signature(user).parameters)
    annotations = typing.get_type_hints(user)
    bound = {b.name: b for b in function.get_bindings() if b.name != "$return"}
    if "context" in params and "context" not in bound:
        params.pop("context")
        context = annotations.get("context")
        assert isinstance(context, type), context
        assert context.__name__ == "Context"
    assert set(params) == set(bound), f"{function.get_function_name()}: {set(params)} vs {set(bound)}"
    for name, binding in bound.items():
        if binding.type in TRIGGER_TYPES:
            assert issubclass(annotations[name], TRIGGER_TYPES[binding.type])
    assert inspect.iscoroutinefunction(user)


def test_every_function_keeps_its_bindings_and_the_worker_would_load_it() -> None:
    """Decorated functions are indexed with the same triggers, and pass the worker's signature checks."""
    indexed = {fn.get_function_name(): fn for fn in indexed_functions(function_app.app)}
    assert set(indexed) == set(BINDINGS), "a function was added or removed: list its trigger in BINDINGS"
    for name, (kind, arg, settings) in BINDINGS.items():
        [trigger] = [b.get_dict_repr() for b in indexed[name].get_bindings() if b.type == kind]
        assert trigger["name"] == arg, name
        assert {k: _plain(trigger[k]) for k in settings} == settings, name
    for function in indexed.values():
        worker_would_load(function)


def test_every_indexed_function_is_traced_under_its_own_name() -> None:
    """Each function in function_app.py has @traced_function, and its Python name is its function name."""
    for function in indexed_functions(function_app.app):
        user = function.get_user_function()
        assert is_traced(user), f"{function.get_function_name()} lacks @traced_function"
        assert user.__name__ == function.get_function_name()


@dataclass
class _TraceContext:
    trace_parent: str
    trace_state: str = ""


@dataclass
class _Context:
    """The parts of the worker's invocation context the decorator reads."""

    invocation_id: str
    trace_context: _TraceContext


def _message(body: bytes = b"{}", *, dequeue_count: int = 2) -> func.QueueMessage:
    return cast(func.QueueMessage, QueueMessage(id="m-1", body=body, dequeue_count=dequeue_count))  # type: ignore[no-untyped-call]


async def test_invocation_span_is_a_child_of_the_hosts_and_names_the_message(otel: Recorded) -> None:
    """With the worker's context the span joins the host's trace; it carries the message id and dequeue count."""

    @traced_function
    async def onboard(msg: func.QueueMessage) -> None:
        telemetry.note_outcome("assigned")

    context = _Context("inv-1", _TraceContext(TRACEPARENT))
    await onboard(_message(), context=cast(func.Context, context))  # type: ignore[call-arg]  # the worker's kwarg
    [span] = otel.spans()
    assert (span.name, span.kind) == ("function onboard", SpanKind.INTERNAL)
    assert span.parent is not None
    assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACEPARENT[3:35], TRACEPARENT[36:52])
    assert dict(span.attributes or {}) == {
        "faas.name": "onboard", "faas.invocation_id": "inv-1", "faas.trigger": "pubsub", "licensing.trigger": "queue",
        "licensing.message_id": "m-1", "licensing.dequeue_count": 2, "licensing.outcome": "assigned",
    }  # fmt: skip


async def test_raising_handler_fails_its_span_and_the_exception_still_propagates(otel: Recorded) -> None:
    """An exception is recorded on the span (error status, outcome error) and raised again for the host."""

    who = "ada.lovelace" + "@contoso.onmicrosoft.com"  # at run time only, as in the app's own messages

    @traced_function
    async def verify(msg: func.QueueMessage) -> None:
        raise RuntimeError(f"storage down while reading {who}")

    with pytest.raises(RuntimeError, match="storage down"):
        await verify(_message())
    [span] = otel.spans()
    assert span.parent is None  # no worker context: a root span
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["licensing.outcome"] == "error"
    assert [e.attributes["exception.type"] for e in span.events if e.attributes] == ["RuntimeError"]
    [event] = span.events
    exported = " ".join(str(v) for v in (event.attributes or {}).values())
    assert "@" not in exported  # our messages name users: only the type and the stack leave the process
    assert "test_traced_function.py" in exported  # where it happened is kept


@pytest.mark.parametrize(("status", "outcome", "code"), [(202, "ok", StatusCode.UNSET), (401, "rejected",
                         StatusCode.UNSET), (503, "unavailable", StatusCode.ERROR)])  # fmt: skip
async def test_http_status_sets_the_outcome(otel: Recorded, status: int, outcome: str, code: StatusCode) -> None:
    """2xx is ok, 4xx rejected, 5xx unavailable and an error; the status code is on the span."""

    @traced_function
    async def hr_events(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("", status_code=status)

    await hr_events(func.HttpRequest("POST", "http://localhost/api/hr/events?code=secret-key", body=b""))
    [span] = otel.spans()
    attributes = dict(span.attributes or {})
    assert (attributes["http.response.status_code"], attributes["licensing.outcome"]) == (status, outcome)
    assert span.status.status_code is code
    assert not any("secret-key" in str(v) for v in attributes.values())  # never the URL: it carries the key
