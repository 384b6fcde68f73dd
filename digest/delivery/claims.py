"""Claiming queued digests exactly once, and fixing what each holds on its first attempt.

Claiming moves a Delivery from `queued` to `sending` atomically (`select_for_update(skip_locked=
True)` on PostgreSQL, a compare-and-set elsewhere), so a task that runs twice, or two workers
given the same ids, never send the same digest twice. What happens to a claimed digest, and the
rules for retries and pauses, are in digest/delivery/sending.py.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, F, Prefetch, Q, Sum, Window
from django.db.models.functions import RowNumber

from digest.delivery.picks import Pick, load_papers, load_picks
from digest.delivery.refusal_alarm import pause_until
from digest.models import Candidate, Delivery
from digest.plain_sql import update_each
from mail.rendering import new_message_id
from subscribers.models import Subscriber, Topic


def claimable(now: datetime) -> Q:
    """Deliveries a worker may take: queued and due, or abandoned in `sending` by a dead worker."""
    stale = now - timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return ((Q(status=Delivery.Status.QUEUED) & due) | Q(status=Delivery.Status.SENDING, claimed_at__lt=stale)) & Q(
        attempts__lt=settings.SEND_MAX_ATTEMPTS
    )


def claim_chunk(delivery_ids: list[int], now: datetime) -> tuple[list[Delivery], dict[int, Subscriber]]:
    """Move the claimable deliveries among `delivery_ids` to `sending`; returns those claimed and
    their subscribers who are still active.

    On PostgreSQL the rows are locked with SKIP LOCKED, so a second worker passes over them at
    once; elsewhere the update is a compare-and-set on the claimable condition (SQLite runs the
    transaction under its write lock, so the rows read are the rows changed).
    """
    claim = {"status": Delivery.Status.SENDING, "claimed_at": now, "attempts": F("attempts") + 1}
    with transaction.atomic():
        rows = Delivery.objects.filter(claimable(now), id__in=delivery_ids).order_by("id")
        if db_connection.vendor == "postgresql":
            rows = rows.select_for_update(skip_locked=True)
        claimed = list(rows)
        ids = [d.id for d in claimed]
        if Delivery.objects.filter(claimable(now), id__in=ids).update(**claim) == len(ids):
            for delivery in claimed:
                delivery.status, delivery.claimed_at, delivery.attempts = (
                    Delivery.Status.SENDING,
                    now,
                    delivery.attempts + 1,
                )
        else:  # another writer got in between (a database without row locks or a write lock)
            claimed = list(Delivery.objects.filter(id__in=ids, status=Delivery.Status.SENDING, claimed_at=now))
    subscribers = load_subscribers([d.subscriber_id for d in claimed]) if claimed else {}
    # The subscribers are read between the two transactions: SQLite writes one transaction at a
    # time, and every other worker's outcomes wait for it. Content not fixed when a worker dies
    # is fixed when the rows are claimed again.
    first = [d for d in claimed if d.subscriber_id in subscribers and not d.message_id]
    if first:
        with transaction.atomic():
            fix_content(first, {d.subscriber_id: subscribers[d.subscriber_id].max_papers for d in first})
    return claimed, subscribers


def load_subscribers(subscriber_ids: list[int]) -> dict[int, Subscriber]:
    """The active ones among `subscriber_ids`, with what building their digest reads."""
    topics = Prefetch("topics", queryset=Topic.objects.only("id", "name"))  # names are all a digest reads
    rows = Subscriber.objects.filter(id__in=subscriber_ids, status=Subscriber.Status.ACTIVE).prefetch_related(topics)
    return {subscriber.id: subscriber for subscriber in rows}


def waiting_candidates(subscriber_ids: list[int]) -> dict[int, list[int]]:
    """Ids of each subscriber's candidates not yet in any digest, best first."""
    rows = Candidate.objects.filter(subscriber_id__in=subscriber_ids, delivery__isnull=True)
    found: dict[int, list[int]] = {subscriber_id: [] for subscriber_id in subscriber_ids}
    for candidate_id, subscriber_id in rows.order_by("subscriber_id", "-score", "id").values_list(
        "id", "subscriber_id"
    ):
        found[subscriber_id].append(candidate_id)
    return found


def pick_papers(subscriber: Subscriber) -> tuple[list[Pick], int]:
    """The papers a digest built now would show, and how many more matched (reads only)."""
    waiting = waiting_candidates([subscriber.id])[subscriber.id]
    shown = waiting[: subscriber.max_papers]
    unstored = Candidate.objects.filter(id__in=waiting).aggregate(n=Sum("unstored"))["n"] or 0
    picks = load_picks(Candidate.objects.filter(id__in=shown).order_by("-score", "id"))
    return picks, len(waiting) - len(shown) + unstored


def fix_content(deliveries: list[Delivery], max_papers: dict[int, int]) -> None:
    """On a first attempt, attach the waiting candidates and give the digest its Message-ID.

    The counts are taken from what was attached, so a match run adding candidates meanwhile
    cannot make them disagree with the delivery's papers.
    """
    first = [d for d in deliveries if not d.message_id]
    if not first:
        return
    # A subscriber's waiting candidates join its delivery (the oldest, should a chunk hold two).
    oldest: dict[int, tuple[int]] = {}
    for delivery in sorted(first, key=lambda d: d.id):
        oldest.setdefault(delivery.subscriber_id, (delivery.id,))
    update_each(Candidate, ("delivery",), oldest, key="subscriber", only_unset=True)
    attached = (
        Candidate.objects.filter(delivery_id__in=[d.id for d in first])
        .values("delivery_id")
        .annotate(n=Count("id"), unstored=Sum("unstored"))
    )
    counts = {
        delivery_id: (n, unstored) for delivery_id, n, unstored in attached.values_list("delivery_id", "n", "unstored")
    }
    for delivery in first:
        found, unstored = counts.get(delivery.id, (0, 0))
        delivery.paper_count = min(found, max_papers[delivery.subscriber_id])
        delivery.more_count = found - delivery.paper_count + unstored
        delivery.message_id = new_message_id()
    update_each(
        Delivery,
        ("paper_count", "more_count", "message_id"),
        {d.id: (d.paper_count, d.more_count, d.message_id) for d in first},
    )


def digest_papers(deliveries: list[Delivery]) -> dict[int, list[Pick]]:
    """The papers each delivery shows: its best `paper_count` candidates (two queries in all).

    A chunk's hundred digests show the same few hundred papers: each is loaded once, not once
    per digest that shows it, and as plain values (digest/delivery/picks.py).
    """
    counts = {d.id: d.paper_count for d in deliveries}
    shown: dict[int, list[Pick]] = {delivery_id: [] for delivery_id in counts}
    if not any(counts.values()):
        return shown
    rank = Window(RowNumber(), partition_by=F("delivery_id"), order_by=[F("score").desc(), F("id").asc()])
    ranked = Candidate.objects.filter(delivery_id__in=counts).annotate(rank=rank).filter(rank__lte=max(counts.values()))
    rows = ranked.order_by("delivery_id", "rank").values_list(
        "id", "delivery_id", "paper_id", "score", "reason", "rank"
    )
    chosen = [row for row in rows if row[5] <= counts[row[1]]]
    papers = load_papers(row[2] for row in chosen)
    for candidate_id, delivery_id, paper_id, score, reason, _ in chosen:
        if paper_id in papers:  # else deleted since, and its candidates with it
            shown[delivery_id].append(Pick(candidate_id, paper_id, papers[paper_id], score, reason))
    return shown


def defer_while_paused(delivery_ids: list[int], now: datetime) -> int:
    """Sending is paused: leave these deliveries queued, unclaimed, until the pause ends."""
    return Delivery.objects.filter(claimable(now), id__in=delivery_ids, status=Delivery.Status.QUEUED).update(
        next_attempt_at=pause_until(now), queued_at=None
    )


def due_retries(now: datetime) -> list[int]:
    """Deliveries to queue again, marked as queued now; the sweep behind `digest.retry_deliveries`.

    That is: retries whose time has come, rows a dead worker left in `sending`, and first
    attempts whose task seems lost (queued longer than SENDING_TIMEOUT_SECONDS ago, e.g. with a
    broker's data). `queued_at` keeps a row that waits behind a long queue from being queued
    again more than once per SENDING_TIMEOUT_SECONDS.
    """
    stale = now - timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
    not_recently_queued = Q(queued_at__isnull=True) | Q(queued_at__lt=stale)
    due = (claimable(now) & not_recently_queued) & (
        Q(status=Delivery.Status.SENDING) | Q(next_attempt_at__isnull=False) | Q(queued_at__isnull=False)
    )
    ids = list(Delivery.objects.filter(due).order_by("id").values_list("id", flat=True))
    Delivery.objects.filter(due, id__in=ids).update(queued_at=now)
    return ids


def give_up_abandoned(now: datetime) -> int:
    """Rows left in `sending` after their last allowed attempt are failed, not retried forever."""
    stale = now - timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
    return Delivery.objects.filter(
        status=Delivery.Status.SENDING, claimed_at__lt=stale, attempts__gte=settings.SEND_MAX_ATTEMPTS
    ).update(status=Delivery.Status.FAILED, last_error="gave up: worker lost during the last attempt")
