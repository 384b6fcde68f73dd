from celery import shared_task

from digest.papers.ingestion import ingest_all, sync_feeds_from_settings

__all__ = ["ingest_feeds"]


@shared_task(name="digest.ingest_feeds")
def ingest_feeds() -> dict[str, int]:
    """Poll every enabled feed; safe to run twice (storing is idempotent)."""
    sync_feeds_from_settings()
    reports = ingest_all()
    return {
        "feeds": len(reports),
        "failed": sum(r.failed for r in reports),
        "new": sum(r.counts.new for r in reports),
        "updated": sum(r.counts.updated for r in reports),
    }
