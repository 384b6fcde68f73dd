"""Claiming queued digests exactly once, and fixing what each holds on its first attempt.

Claiming moves a Delivery from `queued` to `sending` atomically (its row locked with
`select_for_update(skip_locked=True)` on PostgreSQL, under the write lock SQLite takes for the
transaction), so a task that runs twice, or two workers given the same ids, never send the same
digest twice. What happens to a claimed digest, and the
rules for retries and pauses, are in digest/delivery/sending.py.

What a digest holds is an id range of its subscriber's candidates, recorded on the Delivery
(`candidates_after` < id <= `candidates_through`); no candidate row is written when a digest takes
it. The subscriber's waiting candidates are those above the highest `candidates_through` of their
deliveries (the floor), so each digest only has candidates that no earlier one took. Two rules
keep a range from missing or sharing a candidate, on PostgreSQL (on SQLite every writing
transaction holds the database's write lock, taken at BEGIN IMMEDIATE):
- Claims serialize per subscriber: the claim takes its first attempts' subscribers' advisory
  locks (`lock_candidates_of`) before reading their floors, so two claims of one subscriber's
  deliveries (two periods, in two chunks at once) take consecutive ranges.
- Candidate inserts serialize per subscriber, with the same locks (digest/matching/runs.py): ids
  are handed out on insert, not on commit, and a candidate committed after a later-numbered one of
  the same subscriber could fall below a range a claim fixed in between, in no digest ever. With
  the lock held from before the insert to its commit, a subscriber's candidates commit in id
  order, so a claim sees every id below the highest it sees.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, Sum

from digest.delivery.digest_email import PREFETCHED_TOPICS
from digest.delivery.picks import Pick, load_papers, load_picks
from digest.delivery.refusal_alarm import pause_until
from digest.models import Candidate, Delivery, lock_candidates_of
from digest.plain_sql import related_values, rows_above_highest, update_each
from mail.rendering import new_message_id
from subscribers.models import Subscriber


def claimable(now: datetime) -> Q:
    """Deliveries a worker may take: queued and due, or abandoned in `sending` by a dead worker."""
    stale = now - timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return ((Q(status=Delivery.Status.QUEUED) & due) | Q(status=Delivery.Status.SENDING, claimed_at__lt=stale)) & Q(
        attempts__lt=settings.SEND_MAX_ATTEMPTS
    )


def claim_chunk(
    delivery_ids: list[int], now: datetime
) -> tuple[list[Delivery], dict[int, Subscriber], dict[int, list[Pick]]]:
    """Claim the claimable deliveries among `delivery_ids` and fix what the first attempts hold;
    returns those claimed, their subscribers who are still active, and the papers each shows.

    In one transaction (one commit):
    1. Read the listed rows by id, each with whether it is claimable now and its subscriber's
       `max_papers` and status. On PostgreSQL they are locked with SKIP LOCKED, so a second
       worker passes over them at once; SQLite runs the transaction under its write lock. Being
       claimable is computed, not filtered on, so the rows are found by primary key whatever the
       planner's statistics say about statuses (filtered, PostgreSQL read every queued delivery
       of the slot for each chunk when its statistics predated the dispatch).
    2. First attempts of active subscribers take their waiting candidates (`fix_content`): the
       subscribers' locks, then one query for their floors and the candidates above.
    3. One UPDATE moves the claimable rows to `sending` with their attempt counted, and gives
       first attempts their counts and Message-ID. It changes every row read (the rows are
       locked); should it not, another writer got in and nothing is claimed.
    """
    with transaction.atomic():
        rows = (
            Delivery.objects.filter(id__in=delivery_ids)
            .annotate(
                claimable_now=ExpressionWrapper(claimable(now), output_field=BooleanField()),
                max_papers=F("subscriber__max_papers"),
                subscriber_active=ExpressionWrapper(
                    Q(subscriber__status=Subscriber.Status.ACTIVE), output_field=BooleanField()
                ),
            )
            .order_by("id")
        )
        if db_connection.vendor == "postgresql":
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        read = [
            (delivery, delivery.subscriber_active, delivery.max_papers) for delivery in rows if delivery.claimable_now
        ]
        claimed: list[Delivery] = [delivery for delivery, _, _ in read]
        first: list[Delivery] = [delivery for delivery, active, _ in read if active and not delivery.message_id]
        attached = fix_content(first, {d.subscriber_id: max_papers for d, _, max_papers in read})
        for delivery in claimed:
            delivery.status, delivery.claimed_at = Delivery.Status.SENDING, now
            delivery.attempts += 1
        changed = update_each(
            Delivery,
            ("attempts", "paper_count", "more_count", "message_id", "candidates_after", "candidates_through"),
            {
                d.id: (d.attempts, d.paper_count, d.more_count, d.message_id, d.candidates_after, d.candidates_through)
                for d in claimed
            },
            same={"status": Delivery.Status.SENDING, "claimed_at": now},
        )
        if changed != len(claimed):
            transaction.set_rollback(True)
            return [], {}, {}
    subscribers = load_subscribers([d.subscriber_id for d in claimed]) if claimed else {}
    # Retries show what their first attempt fixed.
    fixed_now = {d.id for d in first}
    retried = {d.id for d in claimed if d.id not in fixed_now and d.paper_count}
    if retried:
        attached += held_candidates([d for d in claimed if d.id in retried])
    return claimed, subscribers, shown_picks(attached, {d.id: d.paper_count for d in claimed})


def load_subscribers(subscriber_ids: list[int]) -> dict[int, Subscriber]:
    """The active ones among `subscriber_ids`, with what building their digest reads."""
    found = {s.id: s for s in Subscriber.objects.filter(id__in=subscriber_ids, status=Subscriber.Status.ACTIVE)}
    names = related_values(Subscriber._meta.get_field("topics"), list(found), "name")  # all a digest reads of them
    for subscriber_id, subscriber in found.items():
        setattr(subscriber, PREFETCHED_TOPICS, tuple(names.get(subscriber_id, ())))
    return found


def held_candidates(deliveries: list[Delivery]) -> list[tuple]:
    """The candidates the deliveries' first attempts took, as (id, delivery_id, paper_id, score,
    reason); one query."""
    ranges: dict[int, list[Delivery]] = {}
    in_any = Q()
    for delivery in deliveries:
        if delivery.holds_any:
            ranges.setdefault(delivery.subscriber_id, []).append(delivery)
            in_any |= delivery.holding()
    if not ranges:
        return []
    rows = Candidate.objects.filter(in_any).values_list("id", "subscriber_id", "paper_id", "score", "reason")
    return [
        (candidate_id, delivery.id, paper_id, score, reason)
        for candidate_id, subscriber_id, paper_id, score, reason in rows
        for delivery in ranges[subscriber_id]
        if delivery.holds(candidate_id)
    ]


def is_waiting() -> Q:
    """A candidate no digest has taken: above every range of its subscriber's deliveries."""
    return ~Q(
        Exists(Delivery.objects.filter(subscriber_id=OuterRef("subscriber_id"), candidates_through__gte=OuterRef("id")))
    )


def waiting_candidates(subscriber_ids: list[int]) -> dict[int, list[int]]:
    """Ids of each subscriber's candidates not yet in any digest, best first (reads only)."""
    rows = rows_above_highest(Candidate, ("score",), "subscriber", subscriber_ids, Delivery, "candidates_through")
    found: dict[int, list[int]] = {subscriber_id: [] for subscriber_id in subscriber_ids}
    ranked = sorted((row for row in rows if row[2] is not None), key=lambda row: (-row[3], row[2]))
    for subscriber_id, _, candidate_id, _ in ranked:
        found[subscriber_id].append(candidate_id)
    return found


def pick_papers(subscriber: Subscriber) -> tuple[list[Pick], int]:
    """The papers a digest built now would show, and how many more matched (reads only)."""
    waiting = waiting_candidates([subscriber.id])[subscriber.id]
    shown = waiting[: subscriber.max_papers]
    unstored = Candidate.objects.filter(id__in=waiting).aggregate(n=Sum("unstored"))["n"] or 0
    picks = load_picks(Candidate.objects.filter(id__in=shown).order_by("-score", "id"))
    return picks, len(waiting) - len(shown) + unstored


def fix_content(deliveries: list[Delivery], max_papers: dict[int, int]) -> list[tuple]:
    """On a first attempt, give the deliveries their range of candidates, their counts and a
    Message-ID (saved by the caller, with the claim); returns the candidates taken, as
    (id, delivery_id, paper_id, score, reason).

    A delivery takes its subscriber's candidates above the floor (the highest `candidates_through`
    of the subscriber's deliveries: the highest, not the latest period's, as an older delivery may
    be claimed after a newer one), up to the highest id visible now. The counts are taken from the
    same rows, so a match run adding candidates meanwhile cannot make them disagree with the
    delivery's papers: what it adds has higher ids, left for the next digest.
    """
    first = [d for d in deliveries if not d.message_id]
    if not first:
        return []
    lock_candidates_of(d.subscriber_id for d in first)
    rows = rows_above_highest(
        Candidate,
        ("paper", "score", "reason", "unstored"),
        "subscriber",
        sorted({d.subscriber_id for d in first}),
        Delivery,
        "candidates_through",
    )
    above: dict[int, tuple[int, list[tuple]]] = {}
    for subscriber_id, floor, *candidate in rows:
        taken = above.setdefault(subscriber_id, (floor, []))[1]
        if candidate[0] is not None:
            taken.append(tuple(candidate))
    taken_rows: list[tuple] = []
    # A subscriber's waiting candidates go to its oldest delivery, should a chunk hold two; the
    # other gets the empty range above it.
    for delivery in sorted(first, key=lambda d: d.id):
        floor, candidates = above[delivery.subscriber_id]
        through = max([floor, *(row[0] for row in candidates)])
        above[delivery.subscriber_id] = (through, [])  # taken: nothing left for a second delivery
        delivery.candidates_after, delivery.candidates_through = floor, through
        found = len(candidates)
        delivery.paper_count = min(found, max_papers[delivery.subscriber_id])
        delivery.more_count = found - delivery.paper_count + sum(row[4] for row in candidates)
        delivery.message_id = new_message_id()
        taken_rows += [
            (candidate_id, delivery.id, paper_id, score, reason)
            for candidate_id, paper_id, score, reason, _ in candidates
        ]
    return taken_rows


def shown_picks(candidates: Iterable[tuple], counts: dict[int, int]) -> dict[int, list[Pick]]:
    """The papers each delivery shows: the best `counts[delivery]` of its candidates, given as
    (id, delivery_id, paper_id, score, reason), by score then id, with their papers (one query).

    A chunk's hundred digests show the same few hundred papers: each is loaded once, not once
    per digest that shows it, and as plain values (digest/delivery/picks.py).
    """
    ranked: dict[int, list[tuple]] = {delivery_id: [] for delivery_id in counts}
    for row in candidates:
        ranked[row[1]].append(row)
    chosen = {
        delivery_id: sorted(rows, key=lambda row: (-row[3], row[0]))[: counts[delivery_id]]
        for delivery_id, rows in ranked.items()
    }
    papers = load_papers(row[2] for rows in chosen.values() for row in rows)
    return {
        delivery_id: [
            Pick(candidate_id, paper_id, papers[paper_id], score, reason)
            for candidate_id, _, paper_id, score, reason in rows
            if paper_id in papers  # else deleted since, and its candidates with it
        ]
        for delivery_id, rows in chosen.items()
    }


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
