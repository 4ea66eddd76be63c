"""The seat forecast end to end: signed future hires through the HR webhook, against Azurite and the emulated tenant."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.data.tables.aio import TableClient

from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.storage.forecast_index import drop_hire, index_hire, scheduled_hires
from licensing.cli import main as cli_main
from licensing.cli.parser import build_parser, parse
from licensing.cli.seats import seats
from licensing.core.forecast import ScheduledHire
from licensing.dev.tenant import EmulatedTenant
from licensing.services.context import Services
from licensing.services.forecast import take_forecast, warn_scheduled_hires
from licensing.services.scheduling import held, index_for_forecast, release_due
from licensing.services.seats import SEATS, warn_forecast
from licensing.services.sweep import run_sweep
from licensing.settings import Settings
from tests.e2e.test_cli import EMSPREMIUM
from tests.e2e.test_hr_webhook import event, post, signed
from tests.helpers import EMS

DOMAIN = "contoso.onmicrosoft.com"


def starting(event_id: str, name: str, in_days: int, **extra: Any) -> dict[str, Any]:
    """A hire of ``name`` starting ``in_days`` from today (UTC, the default HR_TIMEZONE)."""
    start = datetime.now(UTC).date() + timedelta(days=in_days)
    return event(event_id, userPrincipalName=f"{name}@{DOMAIN}", startDate=start.isoformat(), **extra)


def day(in_days: int) -> date:
    return datetime.now(UTC).date() + timedelta(days=in_days)


async def accepted(payload: object) -> dict[str, Any]:
    """Post signed events; the webhook must take them all (202)."""
    status, answer = await post(signed(payload))
    assert status == 202, answer
    assert isinstance(answer, dict)
    return answer


async def schedule_the_joiners(tenant: EmulatedTenant, *, ems_free: int = 2) -> None:
    """Two free EMS seats and one EMSPREMIUM; Sales hires (rule "everyone": EMS) within 7 days (queue) and beyond
    (table), an executive (EMSPREMIUM), a leaver who never starts, a re-sent hire with a new date, a replayed event."""
    tenant.state.skus[EMS].enabled = tenant.state.consumed_units(EMS) + ems_free
    tenant.state.skus[EMSPREMIUM].enabled = tenant.state.consumed_units(EMSPREMIUM) + 1
    first = await accepted(
        {
            "events": [
                starting("f-soon1", "soon1", 3),
                starting("f-soon2", "soon2", 5),
                starting("f-late1", "late1", 10),
                starting("f-late2", "late2", 12),
                starting("f-gone", "gone", 11),
                starting("f-boss", "boss", 4, department="Executive"),
            ]
        }
    )
    assert {s["eventId"]: s["status"] for s in first["scheduled"]} == {
        "f-soon1": "delayed",
        "f-soon2": "delayed",
        "f-late1": "held",
        "f-late2": "held",
        "f-gone": "held",
        "f-boss": "delayed",
    }
    await accepted(event("f-gone-bye", "terminate", userPrincipalName=f"gone@{DOMAIN}"))
    await accepted(starting("f-late1-again", "LATE1", 20))  # HR moved the start date: counted once, on the new day
    assert (await accepted(starting("f-soon1", "soon1", 3)))["duplicates"] == ["f-soon1"]


async def test_scheduled_hires_are_forecast_per_sku_once_per_user(services: Services, tenant: EmulatedTenant) -> None:
    """Four EMS hires outlive two free seats on the third one's start date; the leaver and re-send count once."""
    await schedule_the_joiners(tenant)
    taken = await take_forecast(services, days=30)
    ems = next(s for s in taken.skus if s.part_number == "EMS")
    assert ems.free == 2
    assert ems.by_date == ((day(3), 1), (day(5), 1), (day(12), 1), (day(20), 1))
    assert (ems.scheduled, ems.runs_out_on) == (4, day(12))
    assert ems.message() == f"EMS runs out on {day(12).isoformat()}: 4 hires scheduled, 2 seats free"
    premium = next(s for s in taken.skus if s.part_number == "EMSPREMIUM")
    assert (premium.scheduled, premium.by_date) == (1, ((day(4), 1),))
    assert [s.part_number for s in taken.running_out] == ["EMS"]
    shorter = await take_forecast(services, days=11)
    assert next(s for s in shorter.skus if s.part_number == "EMS").runs_out_on is None


async def test_the_warning_is_recorded_once_a_day_with_the_message(
    services: Services, tenant: EmulatedTenant, caplog: pytest.LogCaptureFixture
) -> None:
    """SeatsLow in the _seats partition with the forecast's message as detail, once however often it is checked."""
    await schedule_the_joiners(tenant)
    taken = await take_forecast(services)
    message = f"EMS runs out on {day(12).isoformat()}: 4 hires scheduled, 2 seats free"
    assert await warn_forecast(services, taken) == 0  # the webhook warned when the hires were scheduled
    assert await warn_forecast(services, taken) == 0
    assert await warn_scheduled_hires(services) is not None
    warnings = [e for e in await services.storage.events(SEATS) if e.kind == "SeatsLow"]
    assert [s.message() for s in taken.running_out] == [message]
    first = f"EMS runs out on {day(10).isoformat()}: 5 hires scheduled, 2 seats free"  # warned by the first batch
    assert [(e.sku, e.detail, e.source) for e in warnings] == [("EMS", first, "forecast")]
    assert f"seat forecast: {first}" in caplog.text


async def test_a_scheduled_hire_that_outruns_the_seats_warns_from_the_webhook(
    services: Services, tenant: EmulatedTenant
) -> None:
    """Posting the hires is enough: the webhook takes the forecast and records SeatsLow before any sweep runs."""
    await schedule_the_joiners(tenant)
    warnings = [e.detail for e in await services.storage.events(SEATS) if e.kind == "SeatsLow"]
    # the first batch (five EMS hires, the leaver's terminate not yet in) ran out on day 10: warned once that day
    assert warnings == [f"EMS runs out on {day(10).isoformat()}: 5 hires scheduled, 2 seats free"]


async def test_the_nightly_sweep_records_the_warning(services: Services, tenant: EmulatedTenant) -> None:
    """A sweep run checks the forecast too: the SeatsLow warning is there the next morning."""
    await schedule_the_joiners(tenant, ems_free=10)  # enough seats while HR posts: the webhook does not warn
    assert [e for e in await services.storage.events(SEATS) if e.kind == "SeatsLow"] == []
    tenant.state.skus[EMS].enabled = tenant.state.consumed_units(EMS) + 2  # then seats go elsewhere
    await services.graph.catalog(fresh=True)
    await run_sweep(services)
    warnings = [e.detail for e in await services.storage.events(SEATS) if e.kind == "SeatsLow"]
    assert warnings == [f"EMS runs out on {day(12).isoformat()}: 4 hires scheduled, 2 seats free"]


async def test_a_mover_before_the_start_changes_the_sku_and_the_timer_forgets_started_hires(
    services: Services, tenant: EmulatedTenant
) -> None:
    """An update moving a scheduled joiner to Executive counts them for EMSPREMIUM instead; once the start has
    passed, the release timer drops the index row."""
    await accepted(starting("m-hire", "mover", 10))
    await accepted(event("m-update", "update", userPrincipalName=f"mover@{DOMAIN}", department="Executive"))
    taken = await take_forecast(services)
    assert {s.part_number: s.scheduled for s in taken.skus}["EMSPREMIUM"] == 1
    assert {s.part_number: s.scheduled for s in taken.skus}["EMS"] == 0
    await release_due(services.storage, now=datetime.now(UTC) + timedelta(days=11))
    assert [
        r async for r in services.storage.table("ScheduledRequests").query_entities("PartitionKey eq 'forecast'")
    ] == []


async def run_seats(*argv: str) -> int:
    """`licensing seats …` through the CLI's own parser and command function (main.py wires it by name)."""
    args = parse(build_parser(cli_main.__doc__ or ""), ["seats", *argv])
    settings = Settings.from_env()
    graph = GraphGateway.from_settings(settings)
    try:
        return await seats(args, settings, graph)
    finally:
        await graph.close()


async def test_the_cli_prints_the_forecast_as_json_and_exits_1_when_a_sku_runs_out(
    services: Services, tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """`licensing seats --forecast --json`: one object per SKU in the CLI's vocabulary; exit 1 (something runs out)."""
    await schedule_the_joiners(tenant)
    capsys.readouterr()
    assert await run_seats("--forecast", "--json") == 1
    rows = {r["sku"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["EMS"] == {
        "sku": "EMS",
        "free": 2,
        "scheduled": 4,
        "runsOutOn": day(12).isoformat(),
        "message": f"EMS runs out on {day(12).isoformat()}: 4 hires scheduled, 2 seats free",
        "byDate": [{"date": day(n).isoformat(), "hires": 1} for n in (3, 5, 12, 20)],
    }
    assert (rows["EMSPREMIUM"]["free"], rows["EMSPREMIUM"]["runsOutOn"], rows["EMSPREMIUM"]["message"]) == (
        1,
        None,
        None,
    )
    assert await run_seats("--forecast", "--days", "11", "--csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sku,free,scheduled,runsOutOn,message"
    assert "EMS,2,2,," in lines


async def test_the_cli_without_forecast_prints_the_seats_and_rejects_a_bad_horizon(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    """`licensing seats --json` is the `skus` table; --days outside 1..365 is a usage error naming the range."""
    capsys.readouterr()
    assert await run_seats("--json") == 0
    assert "EMS" in {r["sku"] for r in json.loads(capsys.readouterr().out)}
    for bad in ("0", "366", "soon"):
        with pytest.raises(SystemExit) as exited:
            await run_seats("--forecast", "--days", bad)
        assert exited.value.code == 2
        assert "from 1 to 365" in capsys.readouterr().err


async def test_a_move_cut_short_by_storage_counts_once_and_a_terminate_still_finds_every_row(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage fails between the writes of a moved start date (HR is told to retry and does not): the user counts
    once, on the new date, and a terminate afterwards leaves nothing counted."""
    await accepted(starting("s-first", "stale", 9))
    real_delete = TableClient.delete_entity

    async def failing(self: TableClient, *args: Any, **kwargs: Any) -> None:
        if args and args[0] == "forecast":
            raise ServiceRequestError("storage went away")
        await real_delete(self, *args, **kwargs)

    monkeypatch.setattr(TableClient, "delete_entity", failing)
    status, answer = await post(signed(starting("s-again", "stale", 15)))
    assert (status, answer["retry"]) == (503, ["s-again"])
    monkeypatch.setattr(TableClient, "delete_entity", real_delete)
    rows = services.storage.table("ScheduledRequests").query_entities("PartitionKey eq 'forecast'")
    assert len([r async for r in rows]) == 2  # the old row outlived the move
    taken = await take_forecast(services)
    assert next(s for s in taken.skus if s.part_number == "EMS").by_date == ((day(15), 1),)
    await accepted(event("s-bye", "terminate", userPrincipalName=f"stale@{DOMAIN}"))
    taken = await take_forecast(services)
    assert next(s for s in taken.skus if s.part_number == "EMS").scheduled == 0


async def forecast_rows(services: Services) -> list[str]:
    """The RowKeys of every scheduled hire in the forecast index."""
    rows = services.storage.table("ScheduledRequests").query_entities("PartitionKey eq 'forecast'")
    return [row["RowKey"] async for row in rows]


async def test_two_hires_of_one_person_in_one_batch_then_a_terminate_leave_no_hire(
    services: Services, tenant: EmulatedTenant
) -> None:
    """A batch re-sending one person's hire with two start dates, then their terminate: nothing left in the forecast."""
    await accepted({"events": [starting("t-a", "twice", 10), starting("t-b", "twice", 12)]})
    await accepted(event("t-bye", "terminate", userPrincipalName=f"twice@{DOMAIN}"))
    ems = next(s for s in (await take_forecast(services)).skus if s.part_number == "EMS")
    assert (ems.scheduled, await forecast_rows(services)) == (0, [])


async def test_a_batch_with_a_hire_and_its_cancelling_terminate_leaves_no_hire(
    services: Services, tenant: EmulatedTenant
) -> None:
    """One batch: a future hire, then the same person's terminate (never starts): nothing scheduled remains."""
    upn = f"never@{DOMAIN}"
    await accepted({"events": [starting("b-h", "never", 10), event("b-t", "terminate", userPrincipalName=upn)]})
    hires = [m for _, m in await held(services.storage) if m.get("action", "assign") == "assign"]
    assert (await forecast_rows(services), hires) == ([], [])


async def test_concurrent_hires_of_one_person_keep_the_newest_and_every_row_findable(services: Services) -> None:
    """Six racing decisions about one person: the newest issued start date counts, and a terminate drops every row."""
    now = datetime.now(UTC)
    hires = [
        (ScheduledHire("racer@x.example", now + timedelta(days=10 + n), {"department": "Sales"}), now + timedelta(n))
        for n in range(6)
    ]
    answers = await asyncio.gather(*(index_hire(services.storage, h, issued=at) for h, at in reversed(hires)))
    found = await scheduled_hires(services.storage, after=now, until=now + timedelta(days=30))
    assert (answers[0], [h.starts_at for h in found]) == (True, [hires[-1][0].starts_at])
    assert await drop_hire(services.storage, "RACER@x.example")
    assert await forecast_rows(services) == []


async def test_a_hire_and_a_terminate_racing_leave_no_row_a_later_terminate_cannot_find(services: Services) -> None:
    """Hires and a terminate of one person at once: whatever survives, one more terminate leaves nothing."""
    now = datetime.now(UTC)
    hire = ScheduledHire("both@x.example", now + timedelta(days=9), {"department": "Sales"})
    later = replace(hire, starts_at=now + timedelta(days=11))
    await asyncio.gather(
        index_hire(services.storage, hire, issued=now),
        drop_hire(services.storage, hire.user),
        index_hire(services.storage, later, issued=now),
    )
    await drop_hire(services.storage, hire.user)
    assert await forecast_rows(services) == []


async def test_the_message_issued_at_decides_which_hire_is_the_newest(services: Services) -> None:
    """A re-sent hire issued earlier but indexed later loses to the one issued later: its start date is not counted."""
    now = datetime.now(UTC)
    sent = {"user": "late@x.example", "source": "hr", "hrEvent": "hire", "attributes": {"department": "Sales"}}
    newer = {**sent, "issuedAt": now.isoformat()}
    older = {**sent, "issuedAt": (now - timedelta(minutes=5)).isoformat()}
    await index_for_forecast(services.storage, newer, due=now + timedelta(days=12), now=now)
    await index_for_forecast(services.storage, older, due=now + timedelta(days=8), now=now + timedelta(seconds=1))
    found = await scheduled_hires(services.storage, after=now, until=now + timedelta(days=30))
    assert ([h.starts_at for h in found], len(await forecast_rows(services))) == ([now + timedelta(days=12)], 1)


async def test_a_terminate_issued_before_a_rehire_leaves_the_rehire_counted(services: Services) -> None:
    """A terminate decided before the person's new hire, indexed after it, does not drop the new hire."""
    now = datetime.now(UTC)
    hire = ScheduledHire("back@x.example", now + timedelta(days=9), {"department": "Sales"})
    await index_hire(services.storage, hire, issued=now)
    assert not await drop_hire(services.storage, hire.user, issued=now - timedelta(minutes=1))
    assert [h.user for h in await scheduled_hires(services.storage, after=now, until=now + timedelta(30))] == [
        hire.user
    ]


async def test_a_hire_issued_in_the_future_does_not_outrank_the_next_one(services: Services) -> None:
    """An issuedAt later than its arrival counts as the arrival: the hire sent after it still wins."""
    now = datetime.now(UTC)
    sent = {"user": "ahead@x.example", "source": "hr", "hrEvent": "hire", "attributes": {"department": "Sales"}}
    ahead = {**sent, "issuedAt": (now + timedelta(days=365)).isoformat()}
    await index_for_forecast(services.storage, ahead, due=now + timedelta(days=12), now=now)
    await index_for_forecast(services.storage, sent, due=now + timedelta(days=8), now=now + timedelta(seconds=1))
    found = await scheduled_hires(services.storage, after=now, until=now + timedelta(days=30))
    assert [h.starts_at for h in found] == [now + timedelta(days=8)]
