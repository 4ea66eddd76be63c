"""One user's lifecycle as a stateful property: hire, move, terminate and rehire issued at random times and delivered
in any order, twice, with stale checks, lost leases and storage failures mixed in. The registered queue functions run
against Azurite and the emulated tenant; the queue itself is modelled here so that any delivery order can be chosen.

After every step no status row goes backwards; once everything is delivered, the user holds exactly what the latest
issued HR event says, and every HR request left a trace in the audit trail (completed, skipped or recorded).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from licensing import composition
from licensing.core.errors import TransientError
from licensing.core.queues import LICENSE_REQUESTS_QUEUE, LICENSE_VERIFY_QUEUE
from licensing.core.records import StatusRecord
from licensing.dev.azurite import Azurite
from licensing.dev.localhost import local_settings
from licensing.dev.tenant import EmulatedTenant, TenantState
from licensing.services.context import Services
from tests.conftest import wipe_storage
from tests.helpers import EMS, INTUNE_A, RMS_S_PREMIUM, hire, invoke

INTUNE_EDU = "d9d89b70-a645-4c24-b041-8d3cb1884ec7"
INTUNE_A_D = "2b317a4a-77a6-4188-9437-b68a77b4e2c6"
EPOCH = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
# What each HR profile licenses under licensing-policy.json: SKU id -> disabled plan ids.
PROFILES: dict[str, tuple[dict[str, str], dict[str, list[str]]]] = {
    "sales": ({"department": "Sales"}, {EMS: [INTUNE_A]}),
    "contractor": ({"employeeType": "Contractor"}, {EMS: sorted([INTUNE_A, RMS_S_PREMIUM])}),
    "teacher": ({"department": "Teachers", "companyName": "Contoso School"}, {INTUNE_EDU: [], INTUNE_A_D: []}),
}
FUNCTION = {LICENSE_REQUESTS_QUEUE: "onboard", LICENSE_VERIFY_QUEUE: "verify"}
RANK = {"assigned": 0, "pending": 1, "verified": 2}
MAX_DEQUEUE = 5  # host.json maxDequeueCount


@dataclass
class Message:
    """A message on one of the two queues, with how often it was delivered."""

    function: str
    body: dict[str, Any]
    dequeue_count: int = 1


@dataclass
class Harness:
    """The app's services with the hooks a machine arms: a storage failure, a stall that loses the lease."""

    loop: asyncio.AbstractEventLoop
    services: Services
    tenant: EmulatedTenant
    outbox: list[Message] = field(default_factory=list)
    fail: str | None = None  # "put_status" or "append_event": the next such call raises once
    stall: str | None = None  # a user id: the next write for them finds its lease taken by another worker

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Capture what the app enqueues, and wrap storage writes and the write budget with the armed faults."""
        storage, budget = self.services.storage, self.services.budget

        async def send(queue: str, payload: Any, *, delay_seconds: int = 0) -> None:
            self.outbox.append(Message(FUNCTION[queue], json.loads(json.dumps(payload, default=str))))

        def failing(name: str) -> Any:
            real = getattr(storage, name)

            async def call(*args: Any, **kwargs: Any) -> Any:
                if self.fail == name:
                    self.fail = None
                    raise TransientError(f"storage failed to {name}: ServiceResponseError")
                return await real(*args, **kwargs)

            return call

        real_permit = budget.permit

        async def permit() -> None:  # taken right before each Graph write: a stall past the lease lands here
            if self.stall is not None:
                user, self.stall = self.stall, None
                row = {"PartitionKey": user, "RowKey": "lease", "Holder": "stalled-worker", "ExpiresAt": EPOCH}
                await storage.table("UserLeases").upsert_entity(row)  # taken over, and already expired again
            await real_permit()

        monkeypatch.setattr(storage, "send", send)
        monkeypatch.setattr(storage, "put_status", failing("put_status"))
        monkeypatch.setattr(storage, "append_event", failing("append_event"))
        monkeypatch.setattr(budget, "permit", permit)


class UserLifecycle(RuleBasedStateMachine):
    """One fresh user per example; the harness is shared (one tenant, one Azurite, one event loop)."""

    harness: ClassVar[Harness]

    def __init__(self) -> None:
        super().__init__()
        self.user = hire(self.harness.tenant, f"sm-{uuid.uuid4().hex[:10]}")
        self.inbox: list[Message] = []
        self.delivered: list[Message] = []
        self.issued: dict[int, tuple[str, str]] = {}  # minute -> (profile or "terminate", requestId)
        self.seen: dict[str, tuple[datetime, str, str]] = {}

    def run(self, message: Message) -> None:
        """Deliver one message like the Functions host: a raise redelivers it, past maxDequeueCount it is poisoned."""
        harness = self.harness
        try:
            harness.loop.run_until_complete(invoke(message.function, message.body, dequeue_count=message.dequeue_count))
        except TransientError:
            if message.dequeue_count >= MAX_DEQUEUE:
                poison = f"{message.function}_poison"
                harness.loop.run_until_complete(invoke(poison, message.body))
            else:
                self.inbox.append(Message(message.function, message.body, message.dequeue_count + 1))
        self.delivered.append(message)
        self.inbox.extend(harness.outbox)
        harness.outbox.clear()

    @rule(
        minute=st.integers(min_value=1, max_value=1000),  # EPOCH is a day ago: never in the future
        profile=st.sampled_from([*PROFILES, "terminate"]),
    )
    def hr_event(self, minute: int, profile: str) -> None:
        """HR issues an event at EPOCH + minute: a hire, move or rehire with a profile, or a terminate."""
        while minute in self.issued:  # each HR event has its own time (same-time events are covered elsewhere)
            minute += 1
        request_id = f"hr-{profile}-{minute}"
        body: dict[str, Any] = {
            "user": self.user.user_principal_name,
            "source": "hr",
            "requestId": request_id,
            "issuedAt": (EPOCH + timedelta(minutes=minute)).isoformat(),
        }
        if profile == "terminate":
            body["action"] = "remove"
        else:
            body["attributes"] = PROFILES[profile][0]
        self.issued[minute] = (profile, request_id)
        self.inbox.append(Message("onboard", body))

    @precondition(lambda self: self.inbox)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        """Any queued message is delivered next (delays, visibility timeouts and scale-out reorder them)."""
        self.run(self.inbox.pop(data.draw(st.integers(0, len(self.inbox) - 1), label="message")))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def deliver_again(self, data: st.DataObject) -> None:
        """At-least-once: a message already handled comes again (for a check, a stale one)."""
        old = data.draw(st.sampled_from(self.delivered), label="again")
        self.inbox.append(Message(old.function, old.body))

    @rule(call=st.sampled_from(["put_status", "append_event"]))
    def storage_fails_once(self, call: str) -> None:
        """The next status or audit write fails (the delivery raises and is redelivered)."""
        self.harness.fail = call

    @rule()
    def next_writer_stalls_past_its_lease(self) -> None:
        """The next worker to write to Graph for this user finds that another worker took its lease meanwhile."""
        self.harness.stall = self.user.id

    @invariant()
    def no_status_row_goes_backwards(self) -> None:
        """UpdatedAt never decreases; for one request a row never goes from verified back to assigned."""
        for row in self.rows():
            before = self.seen.get(row.sku)
            if before is not None:
                assert row.updated_at >= before[0], (row.sku, before, row)
                if before[2] == row.request_id:
                    assert RANK.get(row.outcome, 9) >= RANK.get(before[1], -1), (row.sku, before, row)
            self.seen[row.sku] = (row.updated_at, row.outcome, row.request_id)

    def teardown(self) -> None:
        """Drain, then the user's licenses are what the latest issued HR event says, and nothing went unrecorded."""
        self.harness.fail = self.harness.stall = None
        for _ in range(200):
            if not self.inbox:
                break
            self.run(self.inbox.pop(0))
            self.no_status_row_goes_backwards()
        assert not self.inbox, "the queue did not drain"
        held = {a.sku_id: sorted(a.disabled_plans) for a in self.harness.tenant.state.user(self.user.id).assignments}
        if self.issued:
            profile, _ = self.issued[max(self.issued)]
            assert held == ({} if profile == "terminate" else PROFILES[profile][1]), (self.issued, held)
        traced = {e.request_id for e in self.harness.loop.run_until_complete(self.events())}
        assert {request_id for _, request_id in self.issued.values()} <= traced

    def rows(self) -> list[StatusRecord]:
        """The user's status rows, as storage has them now."""

        async def read() -> list[StatusRecord]:
            return [r async for r in self.harness.services.storage.statuses(self.user.id)]

        return self.harness.loop.run_until_complete(read())

    async def events(self) -> list[Any]:
        """The user's audit trail."""
        return await self.harness.services.storage.events(self.user.id)


@pytest.fixture
def harness(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """Hypothesis drives steps synchronously, so the test owns its event loop, tenant and services."""
    loop = asyncio.new_event_loop()
    state = TenantState.default(provisioning_delay=0)
    for sku in state.skus.values():
        sku.enabled += 1000  # seats for every example's user
    tenant = loop.run_until_complete(EmulatedTenant(state=state).start())
    env = {**local_settings(azurite.connection_string, tenant.base_url), "LICENSING_CATALOG_TTL_SECONDS": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    loop.run_until_complete(wipe_storage(azurite.connection_string))
    loop.run_until_complete(composition.reset())
    running = Harness(loop, loop.run_until_complete(composition.services()), tenant)
    running.install(monkeypatch)
    yield running
    loop.run_until_complete(composition.reset())
    loop.run_until_complete(tenant.stop())
    loop.close()


def test_any_interleaving_ends_as_the_latest_issued_hr_event_says(harness: Harness) -> None:
    """Random HR events, deliveries, duplicates, stale checks, lost leases and storage failures: the invariants hold."""
    UserLifecycle.harness = harness
    run_state_machine_as_test(
        UserLifecycle,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
