"""The pure seat forecast: scheduled hires per SKU by start date against the seats free now."""

from datetime import UTC, date, datetime, timedelta

from licensing.core.forecast import Forecast, ScheduledHire, SkuForecast, forecast, skus_for
from licensing.core.policy import Policy, parse_policy
from tests.unit.catalog import catalog

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TODAY = NOW.date()


def policy() -> Policy:
    return parse_policy(
        {
            "rules": [
                {"name": "exec", "match": {"department": "Executive"}, "licenses": [{"sku": "EMSPREMIUM"}]},
                {"name": "edu", "match": {"department": "Teachers"}, "licenses": [{"sku": "INTUNE_EDU"}]},
                {"name": "sales", "match": {"department": "Sales"}, "licenses": [{"sku": "EMS"}]},
            ],
            "companions": [{"sku": "INTUNE_EDU", "requires": ["INTUNE_A_D"]}],
        }
    )


def hire(user: str, in_days: int, department: str = "Sales") -> ScheduledHire:
    return ScheduledHire(user, NOW + timedelta(days=in_days), {"department": department})


def sku(taken: Forecast, part_number: str) -> SkuForecast:
    return next(s for s in taken.skus if s.part_number == part_number)


def take(*hires: ScheduledHire, days: int = 30, **free: int) -> Forecast:
    return forecast(hires, policy=policy(), catalog=catalog(**free), taken_at=NOW, days=days)


def test_no_hires_runs_out_nowhere() -> None:
    """Nothing scheduled: every SKU the policy assigns is listed with its free seats, none runs out."""
    taken = take(ems_free=3)
    assert [s.part_number for s in taken.skus] == ["EMS", "EMSPREMIUM", "INTUNE_A_D", "INTUNE_EDU"]
    assert sku(taken, "EMS") == SkuForecast("EMS", 3, 0, (), None)
    assert taken.running_out == ()
    assert sku(taken, "EMS").message() is None


def test_exactly_enough_seats_do_not_run_out() -> None:
    """Three hires for three free seats: cumulative never exceeds free, so no date and no message."""
    taken = take(hire("a", 2), hire("b", 2), hire("c", 9), ems_free=3)
    ems = sku(taken, "EMS")
    assert (ems.scheduled, ems.by_date) == (3, ((TODAY + timedelta(2), 2), (TODAY + timedelta(9), 1)))
    assert ems.runs_out_on is None
    assert ems.message() is None


def test_one_hire_too_many_runs_out_on_its_start_date() -> None:
    """The fourth hire for three seats: the SKU runs out on the day that hire starts, and the message says so."""
    taken = take(hire("a", 1), hire("b", 2), hire("c", 3), hire("d", 13), ems_free=3)
    ems = sku(taken, "EMS")
    assert ems.runs_out_on == date(2026, 12, 14)
    assert ems.message() == "EMS runs out on 2026-12-14: 4 hires scheduled, 3 seats free"
    assert taken.running_out == (ems,)


def test_no_free_seat_runs_out_on_the_first_hire() -> None:
    """With no seat free the first scheduled hire's day is the day it runs out (singular words for one)."""
    taken = take(hire("a", 5), ems_free=0)
    assert sku(taken, "EMS").runs_out_on == TODAY + timedelta(5)
    assert sku(taken, "EMS").message() == "EMS runs out on 2026-12-06: 1 hire scheduled, 0 seats free"


def test_the_documented_example_message() -> None:
    """23 hires against 14 seats reads exactly as the issue asks."""
    ems = SkuForecast("EMS", 14, 23, ((date(2026, 12, 14), 23),), date(2026, 12, 14))
    assert ems.message() == "EMS runs out on 2026-12-14: 23 hires scheduled, 14 seats free"


def test_several_skus_are_forecast_separately() -> None:
    """Sales hires count against EMS, executives against EMSPREMIUM; each runs out on its own."""
    taken = take(hire("s1", 3), hire("s2", 4), hire("x1", 6, "Executive"), hire("x2", 8, "Executive"), ems_free=5)
    assert (sku(taken, "EMS").scheduled, sku(taken, "EMS").runs_out_on) == (2, None)
    premium = sku(taken, "EMSPREMIUM")
    assert (premium.free, premium.scheduled, premium.runs_out_on) == (0, 2, TODAY + timedelta(6))


def test_a_rule_with_a_companion_needs_a_seat_of_each() -> None:
    """A teacher takes INTUNE_EDU and its companion INTUNE_A_D: both SKUs count the hire."""
    taken = take(hire("t1", 2, "Teachers"), hire("t2", 2, "Teachers"), edu_free=5, device_free=1)
    assert sku(taken, "INTUNE_EDU").scheduled == 2
    assert sku(taken, "INTUNE_EDU").runs_out_on is None
    assert sku(taken, "INTUNE_A_D").runs_out_on == TODAY + timedelta(2)
    assert skus_for(policy(), {"department": "teachers"}) == ("INTUNE_EDU", "INTUNE_A_D")


def test_a_rule_naming_two_skus_counts_the_hire_against_both() -> None:
    """A rule that assigns EMS and EMSPREMIUM: one hire is one seat of each."""
    licenses = [{"sku": "EMS"}, {"sku": "EMSPREMIUM"}]
    both = parse_policy({"rules": [{"name": "all", "match": "all", "licenses": licenses}]})
    taken = forecast([hire("a", 1)], policy=both, catalog=catalog(ems_free=1, premium_free=0), taken_at=NOW, days=30)
    assert [(s.part_number, s.scheduled, s.runs_out_on) for s in taken.skus] == [
        ("EMS", 1, None),
        ("EMSPREMIUM", 1, TODAY + timedelta(1)),
    ]


def test_hires_past_the_horizon_or_already_started_are_ignored() -> None:
    """Only hires starting after now and on or before the horizon's last day count."""
    started = ScheduledHire("old", NOW - timedelta(minutes=1), {"department": "Sales"})
    taken = take(started, hire("in", 7), hire("edge", 7), hire("late", 8), days=7, ems_free=0)
    assert sku(taken, "EMS").by_date == ((TODAY + timedelta(7), 2),)


def test_a_user_scheduled_twice_counts_once_on_the_earliest_day() -> None:
    """The same user twice (any spelling) is one seat per SKU: a duplicate never doubles the count."""
    taken = take(hire("Ada@contoso.example", 9), hire("ada@contoso.example", 4), ems_free=0)
    assert sku(taken, "EMS").by_date == ((TODAY + timedelta(4), 1),)


def test_the_hr_start_date_is_reported_rather_than_the_utc_instant() -> None:
    """A hire effective 23:00 UTC the evening before (00:00 Berlin) is reported on its HR start date."""
    berlin = ScheduledHire("b", datetime(2026, 12, 13, 23, 0, tzinfo=UTC), {"department": "Sales"}, date(2026, 12, 14))
    assert sku(take(berlin, ems_free=0), "EMS").runs_out_on == date(2026, 12, 14)


def test_unmatched_hires_and_unsubscribed_skus_are_left_out() -> None:
    """A hire no rule matches needs no seat; a SKU the tenant does not subscribe to has no row."""
    odd = parse_policy({"rules": [{"name": "all", "match": {"department": "Sales"}, "licenses": [{"sku": "NOPE"}]}]})
    taken = forecast([hire("a", 1, "Legal")], policy=odd, catalog=catalog(), taken_at=NOW, days=30)
    assert taken.skus == ()
    assert sku(take(hire("a", 1, "Legal"), ems_free=0), "EMS").scheduled == 0


def test_a_one_day_forecast_in_sydney_includes_tomorrows_sydney_hire() -> None:
    """At 06:00 on 2 Dec in Sydney (19:00 UTC on 1 Dec), a 1-day forecast counts a hire starting 3 Dec in Sydney."""
    taken_at = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 2026-12-02 06:00 Australia/Sydney (UTC+11)
    starts_at = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)  # 2026-12-03 00:00 in Sydney
    hire = ScheduledHire("a", starts_at, {"department": "Sales"}, starts_on=date(2026, 12, 3))
    taken = forecast(
        [hire], policy=policy(), catalog=catalog(ems_free=0), taken_at=taken_at, days=1, today=date(2026, 12, 2)
    )
    assert (sku(taken, "EMS").scheduled, taken.last_day) == (1, date(2026, 12, 3))


def test_without_hrs_calendar_the_horizon_counts_from_the_utc_date() -> None:
    """No HR date given: the horizon's last day is the UTC date of the forecast plus its days."""
    assert take(days=7).last_day == TODAY + timedelta(7)
