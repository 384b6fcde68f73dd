from celery import shared_task

from digest.delivery.retention import purge_old_rows as purge

__all__ = ["purge_old_rows"]


@shared_task(name="digest.purge_old_rows")
def purge_old_rows() -> dict[str, int]:
    """Beat, daily: delete what is older than RETENTION_DAYS, in batches; safe to run twice."""
    return vars(purge(None))
