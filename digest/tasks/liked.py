from celery import shared_task

from digest.papers import liked_papers
from subscribers.liked_input import LikedInput
from subscribers.models import Subscriber

__all__ = ["add_liked_papers", "fetch_liked_papers"]


@shared_task(name="digest.fetch_liked_papers")
def fetch_liked_papers() -> dict[str, int]:
    """Beat, and after a subscriber adds papers we do not hold: ask arXiv for the waiting ones.
    Safe to run twice: a run claims its rows, and storing papers is idempotent."""
    outcome = liked_papers.fetch_waiting_papers()
    return {"requests": outcome.requests, "found": outcome.found, "not_found": outcome.not_found}


@shared_task(name="digest.add_liked_papers")
def add_liked_papers(subscriber_id: int, liked: dict) -> int:
    """The liked papers given at signup, read and checked by the form already; a repeat adds nothing."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return 0
    return liked_papers.add_liked_papers(subscriber, LikedInput.from_data(liked)).added
