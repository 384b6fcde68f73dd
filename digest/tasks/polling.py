from celery import shared_task

from digest.models import Feed
from digest.papers.ingestion import ingest_feed

__all__ = ["poll_feed"]


@shared_task(name="digest.poll_feed")
def poll_feed(feed_id: int) -> dict[str, int]:
    """The admin's "poll now": one feed, enabled or not, outside the hourly schedule."""
    feed = Feed.objects.filter(pk=feed_id).first()
    if feed is None:
        return {}
    report = ingest_feed(feed)
    return {"new": report.counts.new, "updated": report.counts.updated, "failed": int(report.failed)}
