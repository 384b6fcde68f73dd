"""The public archive of trending papers by day (selectors: read only).

A paper's day is the UTC date it was published; papers without a publication date are left out.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from django.db.models import Count, Max, QuerySet
from django.db.models.functions import TruncDate

from digest.models import Paper


@dataclass(frozen=True)
class ArchiveDay:
    day: date
    papers: int
    top_upvotes: int


def archive_days() -> list[ArchiveDay]:
    """Every day with papers, newest first."""

    rows = (
        Paper.objects.filter(published__isnull=False)
        .annotate(day=TruncDate("published", tzinfo=timezone.utc))
        .values("day")
        .annotate(papers=Count("id"), top_upvotes=Max("upvotes"))
        .order_by("-day")
    )
    return [ArchiveDay(day=row["day"], papers=row["papers"], top_upvotes=row["top_upvotes"] or 0) for row in rows]


def papers_of_day(day: date) -> QuerySet[Paper]:
    """That day's papers, most upvoted first."""
    # From the day's first to its last microsecond: the next midnight of 9999-12-31 does not exist.
    start, end = (datetime.combine(day, moment, tzinfo=timezone.utc) for moment in (time.min, time.max))
    return Paper.objects.filter(published__gte=start, published__lte=end).order_by(
        "-upvotes", "title", "id"
    )
