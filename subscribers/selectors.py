"""Read-only queries behind the subscriber pages."""

from datetime import timedelta

from django.utils import timezone

from digest.models import Paper

PREVIEW_DAYS = 7


def trending_this_week(limit: int = 5) -> list[Paper]:
    """The most upvoted papers we first saw in the last week, newest first among equals."""
    since = timezone.now() - timedelta(days=PREVIEW_DAYS)
    papers = Paper.objects.filter(first_seen__gte=since).only(
        "title", "abstract", "url", "authors", "primary_category", "upvotes", "published"
    )
    return list(papers.order_by("-upvotes", "-published", "-id")[:limit])
