from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import time_machine

from digest.delivery.dispatch import dispatch_due
from digest.models import Delivery
from subscribers.models import Subscriber
from subscribers.scheduling import local_instant, next_delivery_after, period_key, schedule_subscriber
from tests.support.digest_samples import make_subscriber

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def subscriber(zone: str = "UTC", hour: int = 8, frequency: str = "daily", weekday: int = 0) -> Subscriber:
    return Subscriber(
        email="ada@example.org",
        timezone=zone,
        delivery_hour=hour,
        frequency=frequency,
        weekday=weekday,
        status=Subscriber.Status.ACTIVE,
    )


def slots(sub: Subscriber, start: datetime, count: int) -> list[datetime]:
    found, moment = [], start
    for _ in range(count):
        moment = next_delivery_after(sub, moment)
        found.append(moment)
    return found


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_it_delivers_at_the_local_hour():
    assert next_delivery_after(subscriber("Europe/Berlin", 8), utc(2026, 1, 10, 6)) == utc(2026, 1, 10, 7)
    assert next_delivery_after(subscriber("Europe/Berlin", 8), utc(2026, 1, 10, 7)) == utc(2026, 1, 11, 7)
    assert next_delivery_after(subscriber("America/New_York", 8), utc(2026, 7, 1, 11)) == utc(2026, 7, 1, 12)


def test_it_moves_a_missing_hour_to_the_next_valid_instant_in_berlin():
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:00 does not exist that day.
    sub = subscriber("Europe/Berlin", 2)
    assert slots(sub, utc(2026, 3, 27, 12), 3) == [utc(2026, 3, 28, 1), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)]
    assert utc(2026, 3, 29, 1).astimezone(BERLIN).hour == 3


def test_it_uses_the_first_of_a_doubled_hour_in_berlin():
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:00 happens twice.
    sub = subscriber("Europe/Berlin", 2)
    assert slots(sub, utc(2026, 10, 23, 12), 3) == [utc(2026, 10, 24, 0), utc(2026, 10, 25, 0), utc(2026, 10, 26, 1)]


def test_it_handles_both_new_york_transitions():
    spring = subscriber("America/New_York", 2)  # 2026-03-08: 02:00 EST jumps to 03:00 EDT
    assert slots(spring, utc(2026, 3, 7, 0), 3) == [utc(2026, 3, 7, 7), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6)]
    autumn = subscriber("America/New_York", 1)  # 2026-11-01: 01:00-02:00 EDT then again EST
    assert slots(autumn, utc(2026, 10, 31, 0), 3) == [utc(2026, 10, 31, 5), utc(2026, 11, 1, 5), utc(2026, 11, 2, 6)]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"])
@pytest.mark.parametrize("hour", [0, 1, 2, 3, 23])
def test_it_gives_every_local_day_of_a_year_exactly_one_slot(zone, hour):
    found = slots(subscriber(zone, hour), utc(2026, 1, 1), 365)
    days = Counter(moment.astimezone(ZoneInfo(zone)).date() for moment in found)
    assert set(days.values()) == {1}
    assert len(days) == 365
    assert all(later > earlier for earlier, later in pairwise(found))


def test_it_finds_the_half_hour_jump_of_lord_howe():
    # Lord Howe moves from +10:30 to +11:00 at 02:00 local: the next valid instant is 02:30.
    instant = local_instant(date(2026, 10, 4), 2, ZoneInfo("Australia/Lord_Howe"))
    local = instant.astimezone(ZoneInfo("Australia/Lord_Howe"))
    assert (local.hour, local.minute) == (2, 30)
    assert instant - timedelta(seconds=1) < instant
    assert (instant - timedelta(seconds=1)).astimezone(ZoneInfo("Australia/Lord_Howe")).hour == 1


def test_it_delivers_weekly_on_the_weekday_across_a_transition():
    sub = subscriber("Europe/Berlin", 9, "weekly", weekday=0)  # Mondays at 09:00
    found = slots(sub, utc(2026, 10, 14), 3)
    assert [m.astimezone(BERLIN).strftime("%a %H:%M") for m in found] == ["Mon 09:00"] * 3
    assert found == [utc(2026, 10, 19, 7), utc(2026, 10, 26, 8), utc(2026, 11, 2, 8)]


def test_it_names_periods_in_the_subscribers_zone():
    assert period_key(subscriber("UTC"), utc(2026, 11, 26, 8)) == "2026-11-26"
    assert period_key(subscriber("Asia/Tokyo"), utc(2026, 11, 26, 23, 30)) == "2026-11-27"
    assert period_key(subscriber("America/New_York"), utc(2026, 11, 27, 3)) == "2026-11-26"
    assert period_key(subscriber(frequency="weekly"), utc(2026, 11, 26, 8)) == "2026-W48"
    assert period_key(subscriber(frequency="weekly"), utc(2027, 1, 1, 8)) == "2026-W53"


def test_it_falls_back_to_utc_for_an_unknown_zone():
    assert next_delivery_after(subscriber("Mars/Olympus_Mons", 8), utc(2026, 1, 10, 6)) == utc(2026, 1, 10, 8)


@pytest.mark.django_db
@time_machine.travel(utc(2026, 11, 26, 9, 30), tick=False)
def test_it_schedules_active_subscribers_and_clears_the_others():
    sub = make_subscriber(timezone="Europe/Berlin", delivery_hour=8)
    assert schedule_subscriber(sub) == utc(2026, 11, 27, 7)
    sub.refresh_from_db()
    assert sub.next_delivery_at == utc(2026, 11, 27, 7)

    sub.status = Subscriber.Status.PAUSED
    assert schedule_subscriber(sub) is None
    sub.refresh_from_db()
    assert sub.next_delivery_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("zone,start", [("Europe/Berlin", utc(2026, 10, 23)), ("America/New_York", utc(2026, 3, 6))])
def test_it_queues_one_digest_per_local_day_when_the_dispatcher_runs_through_a_dst_night(zone, start):
    with time_machine.travel(start, tick=False) as clock:
        sub = make_subscriber(timezone=zone, delivery_hour=2)
        schedule_subscriber(sub)
        for _ in range(4 * 24 * 4 + 8):  # every 15 minutes for four days and two hours
            clock.shift(timedelta(minutes=15))
            dispatch_due(queue=False)
    periods = list(Delivery.objects.filter(subscriber=sub).order_by("scheduled_for").values_list("period", flat=True))
    first = start.astimezone(ZoneInfo(zone)).date()
    assert periods == [(first + timedelta(days=n)).isoformat() for n in range(1, 5)]
