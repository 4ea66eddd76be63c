"""Property-based fuzzing of the HR webhook: no 5xx, and nothing queued without a valid signature."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from azure.functions import HttpRequest, HttpResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from licensing import composition
from licensing.core.queues import LICENSE_REQUESTS_QUEUE
from licensing.core.signing import sign
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings, user_function
from tests.conftest import HR_SECRET, wipe_storage

HEADER_NAMES = st.sampled_from(["Content-Type", "X-Signature", "X-Timestamp", "X-Forwarded-For", "content-type"])
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    # timestamps inside the 5-minute window, so the HMAC comparison itself is exercised
    st.integers(min_value=-400, max_value=60).map(lambda d: str(int(time.time()) + d)),
    st.sampled_from(["²", "١٧٩٦٠٠٠٠٠٠", "\uff11\uff12\uff13", "17e8", " 1796000000", "-1"]),  # digits isdigit() accepts
    st.just("application/json"),
    st.builds(str, st.integers(min_value=0, max_value=2**40)),
    st.builds(lambda h: "sha256=" + h, st.text("0123456789abcdef", min_size=64, max_size=64)),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
EVENTISH = st.fixed_dictionaries(
    {"eventId": st.text(max_size=20), "type": st.sampled_from(["hire", "update", "terminate", "x"])},
    optional={
        "userPrincipalName": st.text(max_size=30),
        "employeeId": st.text(max_size=10),
        "country": st.text(max_size=3),
        "startDate": st.text(max_size=12),
    },
)
# What json.loads itself cannot read (RecursionError, the 4,300-digit ValueError), alone or inside an event.
UNREADABLE = st.sampled_from(
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"events": [' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"]}",
        b'{"eventId": "e1", "type": "hire", "employeeId": ' + b"9" * 5000 + b"}",
        b"-" + b"1" * 4301,
    ]
)
BODIES = st.one_of(
    st.binary(max_size=300),
    UNREADABLE,
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    EVENTISH.map(lambda v: json.dumps(v).encode()),
    st.lists(EVENTISH, max_size=3).map(lambda v: json.dumps({"events": v}).encode()),
)


async def call(headers: dict[str, str], body: bytes) -> int:
    response: HttpResponse = await user_function(function_app.app, "hr_events")(
        HttpRequest(method="POST", url="http://localhost/api/hr/events", headers=headers, params={}, body=body)
    )
    status: int = response.status_code
    return status


async def queued() -> int:
    services = await composition.services()
    props = await services.storage.queue(LICENSE_REQUESTS_QUEUE).get_queue_properties()
    return props.approximate_message_count or 0


@pytest.fixture
def loop(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.AbstractEventLoop]:
    """Hypothesis drives examples synchronously, so this test owns its event loop (and clean storage)."""
    env = {**local_settings(azurite.connection_string, "http://127.0.0.1:9/v1.0"), "HR_WEBHOOK_SECRET": HR_SECRET}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    running = asyncio.new_event_loop()
    running.run_until_complete(wipe_storage(azurite.connection_string))
    yield running
    running.run_until_complete(composition.reset())
    running.close()


def test_random_unsigned_requests_never_5xx_and_never_enqueue(loop: asyncio.AbstractEventLoop) -> None:
    """Arbitrary headers and bodies: always a 4xx, and the queue stays empty."""
    statuses: list[int] = []

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4), body=BODIES)
    def run(headers: dict[str, str], body: bytes) -> None:
        status = loop.run_until_complete(call(headers, body))
        statuses.append(status)
        assert 400 <= status < 500, (status, headers, body[:80])

    run()
    assert len(statuses) >= 300
    assert loop.run_until_complete(queued()) == 0


def test_validly_signed_random_bodies_never_5xx(loop: asyncio.AbstractEventLoop) -> None:
    """Correctly signed garbage is a 400 (or a 202 when it happens to be valid), never a server error."""
    seen: set[int] = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=BODIES)
    def run(body: bytes) -> None:
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Timestamp": timestamp,
                   "X-Signature": sign(HR_SECRET, timestamp, body)}  # fmt: skip
        status = loop.run_until_complete(call(headers, body))
        seen.add(status)
        assert status in {202, 400}, (status, body[:80])

    run()
    assert 400 in seen
