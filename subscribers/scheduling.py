"""When each subscriber's next digest is due, in their own time zone, and which period it covers.

A digest is due at the subscriber's `delivery_hour` on every local day (daily) or on their
`weekday` (weekly). Daylight saving neither skips nor doubles a day: a local hour that does not
exist (clocks jump forward) means the first valid instant after it on that day, and a local hour
that happens twice (clocks go back) means its first occurrence.
"""

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from subscribers.models import Subscriber


def subscriber_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# The dispatcher asks it about three times per subscriber, and most share a zone and an hour.
@lru_cache(maxsize=4096)
def local_instant(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """`hour`:00 on `day` in `zone`, as an aware UTC datetime (see the module docstring for DST)."""
    wall = datetime.combine(day, time(hour))
    first = wall.replace(tzinfo=zone)  # fold=0: the first occurrence of an ambiguous hour
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # The hour falls in a gap. fold=0 and fold=1 map it to two UTC instants around the jump;
    # the jump itself is the first instant whose wall time is not before `wall`.
    low, high = sorted(int(wall.replace(tzinfo=zone, fold=fold).timestamp()) for fold in (0, 1))
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def is_delivery_day(subscriber: Subscriber, day: date) -> bool:
    if subscriber.frequency == Subscriber.Frequency.WEEKLY:
        return day.weekday() == subscriber.weekday
    return True


def next_delivery_after(subscriber: Subscriber, after: datetime) -> datetime:
    """The first delivery instant strictly after `after`, in UTC."""
    zone = subscriber_zone(subscriber.timezone)
    hour = min(max(int(subscriber.delivery_hour), 0), 23)
    day = after.astimezone(zone).date()
    # One day back covers an instant on the previous local date that is still ahead of `after`;
    # eight days forward always reaches the next weekly slot.
    for offset in range(-1, 9):
        candidate_day = day + timedelta(days=offset)
        if not is_delivery_day(subscriber, candidate_day):
            continue
        instant = local_instant(candidate_day, hour, zone)
        if instant > after:
            return instant
    raise AssertionError("no delivery instant within eight days")  # unreachable: weekday is 0-6


def period_key(subscriber: Subscriber, moment: datetime) -> str:
    """The period a digest sent at `moment` covers: `2026-11-26` (daily) or `2026-W48` (weekly)."""
    day = moment.astimezone(subscriber_zone(subscriber.timezone)).date()
    if subscriber.frequency == Subscriber.Frequency.WEEKLY:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def schedule_subscriber(subscriber: Subscriber, now: datetime | None = None) -> datetime | None:
    """Set (and save) `next_delivery_at`: the next slot for an active subscriber, else nothing.

    Call it when a subscriber becomes active or changes time zone, frequency, weekday or hour.
    Moving the slot never sends a period twice: the Delivery row is unique per period.
    """
    now = now or timezone.now()
    value = next_delivery_after(subscriber, now) if subscriber.status == Subscriber.Status.ACTIVE else None
    subscriber.next_delivery_at = value
    if subscriber.pk:
        Subscriber.objects.filter(pk=subscriber.pk).update(next_delivery_at=value)
    return value


def next_delivery_text(subscriber: Subscriber, now: datetime | None = None) -> str:
    """When the next digest is due, as the subscriber's own clock shows it: "tomorrow, Saturday
    5 December, at 08:00 (Europe/Paris time)". Empty when none is due (paused, unsubscribed)."""
    if subscriber.next_delivery_at is None:
        return ""
    zone = subscriber_zone(subscriber.timezone)
    due = subscriber.next_delivery_at.astimezone(zone)
    today = (now or timezone.now()).astimezone(zone).date()
    day = f"{due:%A} {due.day} {due:%B}"
    if due.date() == today:
        day = f"today, {day},"
    elif due.date() == today + timedelta(days=1):
        day = f"tomorrow, {day},"
    else:
        day = f"on {day}"
    return f"{day} at {due:%H:%M} ({zone.key} time)"
