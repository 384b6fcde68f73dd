from celery import group, shared_task
from django.db import transaction

from digest.matching import runs
from subscribers import rematch

__all__ = ["match_chunk", "match_new_papers", "match_recent_papers"]


@shared_task(name="digest.match_new_papers")
def match_new_papers(all_papers: bool = False) -> int | None:
    """Beat: start a run over the new papers and fan its subscriber chunks out to the workers."""
    plan = runs.start_match_run(all_papers=all_papers)
    if plan is None or not plan.chunks:
        return None
    chunks = group(match_chunk.si(plan.run_id, chunk) for chunk in plan.chunks)
    transaction.on_commit(chunks.apply_async)
    return plan.run_id


@shared_task(name="digest.match_chunk", acks_late=True)
def match_chunk(run_id: int, subscriber_ids: list[int]) -> int:
    """Match one chunk; running it again creates nothing new."""
    return runs.match_chunk(run_id, subscriber_ids)


@shared_task(name="digest.match_recent_papers", acks_late=True)
def match_recent_papers(subscriber_id: int) -> int:
    """A subscriber who confirmed or changed preferences: match the papers of the last days now."""
    rematch.started(subscriber_id)  # before reading the preferences: a later change queues again
    return runs.match_recent_papers(subscriber_id)
