from celery import shared_task

from digest.matching import vectors
from subscribers.models import Subscriber

__all__ = ["store_interest_vector", "store_paper_vectors"]


@shared_task(name="digest.store_paper_vectors", acks_late=True)
def store_paper_vectors(paper_ids: list[int]) -> int:
    """After ingestion: encode and store these papers' vectors; running it again encodes nothing."""
    return vectors.store_paper_vectors(paper_ids)


@shared_task(name="digest.store_interest_vector", acks_late=True)
def store_interest_vector(subscriber_id: int) -> bool:
    """After a subscriber's interest is saved: encode and store it; running it again encodes nothing."""
    interests = Subscriber.objects.filter(pk=subscriber_id).values_list("interests", flat=True).first()
    return vectors.store_interest_vector(interests or "")
