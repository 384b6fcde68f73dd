"""The public pages' papers (selectors: read only): the archive of trending papers by day, and
this week's trending papers.

A paper's day is the UTC date it was published; papers without a publication date are left out.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Max, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from digest.models import Paper

TRENDING_DAYS = 7


@dataclass(frozen=True)
class ArchiveDay:
    day: date
    papers: int
    top_upvotes: int


def archive_days() -> list[ArchiveDay]:
    """Every day with papers, newest first."""

    rows = (
        Paper.objects.filter(published__isnull=False)
        .annotate(day=TruncDate("published", tzinfo=UTC))
        .values("day")
        .annotate(papers=Count("id"), top_upvotes=Max("upvotes"))
        .order_by("-day")
    )
    return [ArchiveDay(day=row["day"], papers=row["papers"], top_upvotes=row["top_upvotes"] or 0) for row in rows]


def papers_of_day(day: date) -> QuerySet[Paper]:
    """That day's papers, most upvoted first."""
    # From the day's first to its last microsecond: the next midnight of 9999-12-31 does not exist.
    start, end = (datetime.combine(day, moment, tzinfo=UTC) for moment in (time.min, time.max))
    return Paper.objects.filter(published__gte=start, published__lte=end).order_by("-upvotes", "title", "id")


def trending_this_week(limit: int = 5) -> list[Paper]:
    """The most upvoted papers we first saw in the last week, newest first among equals."""
    since = timezone.now() - timedelta(days=TRENDING_DAYS)
    # Not those fetched for a reader's liked list: not trending, and whose they are is private.
    papers = Paper.objects.filter(first_seen__gte=since, fetched_for_liked=False).only(
        "title", "abstract", "url", "authors", "primary_category", "upvotes", "published"
    )
    return list(papers.order_by("-upvotes", "-published", "-id")[:limit])
