"""Selectors behind the admin dashboard: each one a fixed number of queries, whatever the table sizes.

Days are UTC calendar days, oldest first, ending today. Counts are grouped in the database and
folded into per-day series here, so a year of history costs the same query as a week.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from digest.models import Delivery, Feed, Paper, PaperSource
from digest.ops.health import redis_client
from digest.papers.seeds import SEED_FEED
from subscribers.models import Subscriber, Topic

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

DEFAULT_DAYS = 30
TOP_SOURCES = 6
FAILED_STATUSES = (Delivery.Status.FAILED, Delivery.Status.BOUNCED)
SENT_AFTER_SCHEDULED = timedelta(days=2)
CONFIRMED_STATUSES = (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED, Subscriber.Status.BOUNCED)


class UTCDate(TruncDate):
    """The UTC calendar day of a datetime.

    SQLite stores datetimes as UTC text, so the day is its first ten characters: a built-in
    string function instead of the Python function Django registers for TruncDate, which made
    grouping half a million deliveries take seconds.
    """

    def __init__(self, expression, **extra):
        super().__init__(expression, tzinfo=UTC, **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.lhs)
        return f"substr({sql}, 1, 10)", params


@dataclass
class DaySeries:
    """Named series of one number per day."""

    days: list[date]
    series: dict[str, list[int]] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [day.strftime("%b %d") for day in self.days]


def day_range(days: int, today: date | None = None) -> list[date]:
    today = today or timezone.now().date()
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


def _start_of(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _fold(days: list[date], rows: list[tuple[date, str, int]], names: list[str]) -> DaySeries:
    index = {day: i for i, day in enumerate(days)}
    result = DaySeries(days, {name: [0] * len(days) for name in names})
    for day, name, count in rows:
        if day in index and name in result.series:
            result.series[name][index[day]] += count
    return result


def status_on(day: date, status: str, confirmed: date | None, unsubscribed: date | None) -> str:
    """A subscriber's status at the end of `day`, from their timestamps and current status.

    Only confirmation and unsubscription are dated, so a paused or bounced subscriber counts as
    such from their confirmation on; that is the best the stored history allows.
    """
    reconfirmed = confirmed is not None and unsubscribed is not None and unsubscribed < confirmed <= day
    if unsubscribed is not None and unsubscribed <= day and not reconfirmed:
        return Subscriber.Status.UNSUBSCRIBED
    if confirmed is not None and confirmed <= day:
        return status if status in CONFIRMED_STATUSES else Subscriber.Status.ACTIVE
    return Subscriber.Status.PENDING


def subscribers_over_time(days: int = DEFAULT_DAYS) -> DaySeries:
    """How many subscribers were in each status at the end of each day. One query."""
    span = day_range(days)
    groups = (
        Subscriber.objects.order_by()
        .annotate(
            created_day=UTCDate("created_at"),
            confirmed_day=UTCDate("confirmed_at"),
            unsubscribed_day=UTCDate("unsubscribed_at"),
        )
        .values_list("status", "created_day", "confirmed_day", "unsubscribed_day")
        .annotate(n=Count("id"))
    )
    result = DaySeries(span, {status: [0] * len(span) for status in Subscriber.Status.values})
    for status, created, confirmed, unsubscribed, count in groups:
        for i, day in enumerate(span):
            if created <= day:
                result.series[status_on(day, status, confirmed, unsubscribed)][i] += count
    return result


def digests_per_day(days: int = DEFAULT_DAYS) -> DaySeries:
    """Digests sent and failed (or bounced) per day, by the day they were sent or due. One query."""
    span = day_range(days)
    rows = (
        Delivery.objects.order_by()
        # A range on the indexed column; retries send a digest within hours of its slot, so a
        # slack of two days catches every digest sent in the window (older days are dropped).
        .filter(scheduled_for__gte=_start_of(span[0]) - SENT_AFTER_SCHEDULED)
        .annotate(day=UTCDate(Coalesce("sent_at", "scheduled_for")))
        .values_list("day", "status")
        .annotate(n=Count("id"))
    )
    named = [(day, "failed" if status in FAILED_STATUSES else status, n) for day, status, n in rows]
    return _fold(span, named, ["sent", "failed"])


# Papers stored by `manage.py ingest FILE-OR-URL` have no feed: the dashboard names them so.
INGESTED_FILES = "ingested files"


def papers_per_day_by_source(days: int = DEFAULT_DAYS) -> DaySeries:
    """New sightings per day for each feed (the seed papers' included), and the papers ingested
    from files or addresses, which have no feed; beyond the busiest few sources, the rest add up
    as "other". Two queries."""
    span = day_range(days)
    start = _start_of(span[0])
    rows = list(
        PaperSource.objects.order_by()
        .filter(first_seen__gte=start)
        .annotate(day=UTCDate("first_seen"))
        .values_list("day", "feed__name", "feed__url")
        .annotate(n=Count("id"))
    )
    rows += [
        (day, INGESTED_FILES, "", n)
        for day, n in Paper.objects.order_by()
        .filter(first_seen__gte=start)
        .filter(~Exists(PaperSource.objects.filter(paper=OuterRef("pk"))))
        .annotate(day=UTCDate("first_seen"))
        .values_list("day")
        .annotate(n=Count("id"))
    ]
    totals: Counter[str] = Counter()
    for _, name, url, n in rows:
        totals[name or url] += n
    kept = [name for name, _ in totals.most_common(TOP_SOURCES)]
    named = [(day, (name or url) if (name or url) in kept else "other", n) for day, name, url, n in rows]
    return _fold(span, named, kept + (["other"] if len(totals) > len(kept) else []))


def _by_path(since: datetime) -> dict[str, Q]:
    """Papers first stored since `since`, by the path they came in by: a polled feed, an
    ingested file (or address), or the seeds; a paper a feed announced too counts for the feed."""
    from_seeds = Exists(PaperSource.objects.filter(paper=OuterRef("pk"), feed__url=SEED_FEED))
    from_feeds = Exists(PaperSource.objects.filter(paper=OuterRef("pk")).exclude(feed__url=SEED_FEED))
    new = Q(first_seen__gte=since)
    return {
        "feeds": new & Q(from_feeds),
        "files": new & ~Q(from_feeds) & ~Q(from_seeds),
        "seeds": new & ~Q(from_feeds) & Q(from_seeds),
    }


def new_papers_by_path(since: datetime) -> dict[str, int]:
    """How many papers came in by each path since `since`. One query."""
    return Paper.objects.aggregate(**{path: Count("id", filter=q) for path, q in _by_path(since).items()})


class Followers(TypedDict):
    followers: int


def topics_with_followers() -> "QuerySet[WithAnnotations[Topic, Followers]]":
    """Topics annotated with `followers`, their number of active subscribers."""
    return Topic.objects.annotate(
        followers=Count("subscribers", filter=Q(subscribers__status=Subscriber.Status.ACTIVE))
    )


def most_followed_topics(limit: int = 10) -> list[tuple[str, int]]:
    """One query."""
    topics = topics_with_followers().order_by("-followers", "name")[:limit]
    return [(topic.name, topic.followers) for topic in topics]


def totals() -> dict[str, int]:
    """Headline numbers. Three queries."""
    since = timezone.now() - timedelta(hours=24)
    by_status = defaultdict(int, Subscriber.objects.order_by().values_list("status").annotate(n=Count("id")))
    papers = Paper.objects.aggregate(
        total=Count("id"),
        new=Count("id", filter=Q(first_seen__gte=since)),
        **{f"new_from_{path}": Count("id", filter=q) for path, q in _by_path(since).items()},
    )
    enabled = Q(enabled=True)
    feeds = Feed.objects.aggregate(
        on=Count("id", filter=enabled),
        polled=Count("id", filter=enabled & Q(last_polled_at__gte=since)),
        failing=Count("id", filter=enabled & ~Q(last_error="")),
    )
    return {
        "subscribers_active": by_status[Subscriber.Status.ACTIVE],
        "subscribers_pending": by_status[Subscriber.Status.PENDING],
        "subscribers_total": sum(by_status.values()),
        "papers_total": papers["total"],
        "papers_new_24h": papers["new"],
        "papers_new_24h_from_feeds": papers["new_from_feeds"],
        "papers_new_24h_from_files": papers["new_from_files"],
        "papers_new_24h_from_seeds": papers["new_from_seeds"],
        "feeds_enabled": feeds["on"],
        "feeds_polled_24h": feeds["polled"],
        "feeds_failing": feeds["failing"],
    }


# kombu's Redis transport keeps a queue's prioritised messages in lists of their own.
REDIS_PRIORITY_SEPARATOR = "\x06\x16"
REDIS_PRIORITY_STEPS = (3, 6, 9)


def queue_names() -> list[str]:
    """The Celery queues: the default one, matching and sending (config/settings.py)."""
    return list(
        getattr(settings, "CELERY_TASK_QUEUES", None) or [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]
    )


def queue_name() -> str:
    return ", ".join(queue_names())


def queue_depths() -> dict[str, int] | None:
    """Tasks waiting in each queue, or None when the broker cannot be asked.

    Redis: the length of each queue's lists (one round trip). Filesystem broker: the message files
    in its folder.
    """
    names = queue_names()
    if settings.REDIS_URL:
        try:
            pipeline = redis_client(settings.REDIS_URL).pipeline(transaction=False)
            for name in names:
                pipeline.llen(name)
                for step in REDIS_PRIORITY_STEPS:
                    pipeline.llen(f"{name}{REDIS_PRIORITY_SEPARATOR}{step}")
            lengths = cast(list[int], pipeline.execute())
        except Exception:  # any failure means "unknown", shown as such
            return None
        per_queue = len(REDIS_PRIORITY_STEPS) + 1
        return {name: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, name in enumerate(names)}
    folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
    if not folder.is_dir():
        return dict.fromkeys(names, 0)
    return {name: sum(1 for _ in folder.glob(f"*.{name}.msg")) for name in names}


def queue_length() -> int | None:
    """Tasks waiting in all the queues together, or None when the broker cannot be asked."""
    depths = queue_depths()
    return None if depths is None else sum(depths.values())
