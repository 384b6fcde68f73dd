from celery import shared_task
from django.utils import timezone

from digest.delivery.claims import due_retries, give_up_abandoned
from digest.delivery.dispatch import dispatch_due, queue_deliveries
from digest.delivery.refusal_alarm import forget_old_tallies
from digest.delivery.sending import send_delivery_chunk

__all__ = ["dispatch_digests", "retry_deliveries", "send_digest_chunk"]


@shared_task(name="digest.dispatch_digests")
def dispatch_digests() -> int:
    """Beat: queue the digests that are due; returns how many deliveries were created."""
    return len(dispatch_due(timezone.now()))


@shared_task(name="digest.send_digest_chunk", acks_late=True)
def send_digest_chunk(delivery_ids: list[int]) -> dict[str, int]:
    """Send a chunk of deliveries; a second run finds them claimed or sent and sends nothing."""
    return vars(send_delivery_chunk(delivery_ids))


@shared_task(name="digest.retry_deliveries")
def retry_deliveries() -> int:
    """Beat: queue retries that are due and deliveries a dead worker left in `sending`."""
    now = timezone.now()
    give_up_abandoned(now)
    forget_old_tallies(now)
    ids = due_retries(now)
    queue_deliveries(ids)
    return len(ids)
