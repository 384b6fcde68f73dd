"""What an operator triggers from the admin: poll feeds now, retry failed digests, preview a digest.

The preview reads exactly what the next digest would contain (`claims.pick_papers`) and builds
the very message `sending` would send (`digest_email.build_digest_message`), but creates no
Delivery and attaches no candidate: previewing changes nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone

from config.celery import queue_on_commit
from digest.delivery.claims import pick_papers
from digest.delivery.digest_email import build_digest_message
from digest.delivery.dispatch import queue_deliveries
from digest.matching.engine import BatchIndex, Match, build_matcher, match_many, paper_doc
from digest.models import Delivery, Paper
from subscribers.models import Subscriber

# A preview goes to staff: a one-click unsubscribe from their mail client must not unsubscribe
# the subscriber whose digest they were looking at.
PREVIEW_DROPPED_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post")
# A topic preview matches against this many of the newest papers: recent enough to be what the
# next digests will draw from, few enough to answer while the page loads.
TOPIC_PREVIEW_PAPERS = 500
TOPIC_PREVIEW_SHOWN = 20


def poll_now(feed_ids: Iterable[int]) -> int:
    """Queue one poll per feed, after the current transaction commits. Returns how many."""
    ids = list(feed_ids)
    for feed_id in ids:
        queue_on_commit("digest.poll_feed", feed_id)
    return len(ids)


def retry_failed(delivery_ids: Iterable[int]) -> list[int]:
    """Put failed deliveries back in the queue with fresh attempts; returns the ids requeued.

    The rows are locked while they move, so only rows still `failed` are requeued and a double
    click queues nothing twice. The content and Message-ID fixed on the first attempt are kept:
    the retry sends the same digest, and the sender re-checks that the subscriber is still active.
    """
    with transaction.atomic():
        failed = Delivery.objects.select_for_update().filter(id__in=list(delivery_ids), status=Delivery.Status.FAILED)
        ids = list(failed.order_by("id").values_list("id", flat=True))
        Delivery.objects.filter(id__in=ids).update(
            status=Delivery.Status.QUEUED, attempts=0, next_attempt_at=None, queued_at=timezone.now()
        )
        queue_deliveries(ids)  # sent to the workers once this commits
    return ids


@dataclass(frozen=True)
class DigestPreview:
    message: EmailMultiAlternatives
    papers: int
    more: int

    @property
    def html(self) -> str:
        alternatives = self.message.alternatives
        return next((part for part, mimetype in alternatives if mimetype == "text/html" and isinstance(part, str)), "")


def preview_next_digest(subscriber: Subscriber) -> DigestPreview:
    """The email the subscriber's next digest would be if it were sent now. Reads only."""
    candidates, more = pick_papers(subscriber)
    return DigestPreview(build_digest_message(subscriber, candidates, more), len(candidates), more)


def send_preview(subscriber: Subscriber, to_address: str) -> EmailMultiAlternatives:
    """Email the subscriber's next digest to `to_address` (a staff member), recording nothing."""
    message = preview_next_digest(subscriber).message
    message.to = [to_address]
    message.subject = f"[Preview for {subscriber.email}] {message.subject}"
    for name in PREVIEW_DROPPED_HEADERS:
        message.extra_headers.pop(name, None)
    message.send()
    return message


def preview_topic_matches(
    name: str, description: str, keywords: str, *, papers: int = TOPIC_PREVIEW_PAPERS, shown: int = TOPIC_PREVIEW_SHOWN
) -> list[tuple[Paper, Match]]:
    """Which of the newest papers a topic with this description and these keywords would match,
    best first, scored by the same matcher the match runs use. Reads only."""
    recent = list(Paper.objects.order_by("-id")[:papers])
    if not recent:
        return []
    matcher = build_matcher(topics=[(name, description, keywords)])
    matches = match_many([matcher], BatchIndex([paper_doc(paper) for paper in recent]), keep=shown)[0]
    by_id = {paper.id: paper for paper in recent}
    return [(by_id[match.paper_id], match) for match in matches]
