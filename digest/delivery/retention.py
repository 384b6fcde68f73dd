"""Keeping the database bounded: what is older than RETENTION_DAYS is deleted, in small batches.

`purge_old_rows` (the beat task `digest.purge_old_rows`, daily) deletes, each batch of at most
RETENTION_BATCH_SIZE rows in its own short transaction so that no lock is held for long:

1. Finished deliveries (sent, skipped, failed, bounced) scheduled before the cutoff, with the
   candidates of their ranges. Each batch locks its deliveries first (SKIP LOCKED on PostgreSQL)
   and deletes only rows still finished: a delivery an operator puts back in the queue meanwhile
   (`retry_failed`) keeps its content. The candidates go in the same transaction: a delivery
   gone alone would lower its subscriber's floor (digest/delivery/claims.py) and offer its
   candidates again. A claim reading the floor sees both deleted, or neither.
2. Candidates still waiting (above their subscriber's floor) for a paper first seen before the
   cutoff, unless their subscriber has a delivery queued or sending: its content may be fixed from
   them at any moment. Each batch holds its subscribers' candidate locks (`lock_candidates_of`, as
   a claim does) and its delete re-checks that they still wait, so a digest whose range is fixed
   meanwhile keeps every candidate it took.
3. Match runs that finished (or started, for runs whose chunks were lost) before the cutoff, but
   never the newest finished run: the next run starts after it.
4. The markers of the chunks stored (MatchChunk) of runs finished more than a day ago: they only
   stop a chunk's task delivered again from storing a second share, and redelivery comes within
   hours (the broker's visibility timeout). A run's markers go with it in step 3 anyway.
5. Sentence vectors (TextVector) nothing used since before the cutoff: a paper no run or first
   match has read, an interest nobody matched (a paused or departed subscriber). Whoever needs one
   again encodes it again (digest/matching/vectors.py); a batch re-checks the date it deletes by,
   so a vector a run marks used meanwhile stays.

What a queued or retrying delivery needs is never deleted: the delivery, its candidates, and the
waiting candidates of its subscriber. RETENTION_DAYS should be at least the lifetime of a digest's
web link (60 days), whose page reads the delivery and its candidates.
Ranges of different deliveries never overlap, so deleting one's candidates takes nothing another
holds.
"""

import logging
import operator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.logging import log_event
from digest.chunks import chunked
from digest.delivery.claims import is_waiting
from digest.models import Candidate, Delivery, MatchChunk, MatchRun, TextVector, lock_candidates_of

log = logging.getLogger(__name__)

FINISHED = (Delivery.Status.SENT, Delivery.Status.SKIPPED, Delivery.Status.FAILED, Delivery.Status.BOUNCED)
PENDING = (Delivery.Status.QUEUED, Delivery.Status.SENDING)
RANGES_PER_DELETE = 200
MATCH_CHUNKS_KEPT = timedelta(days=1)


@dataclass
class Purged:
    deliveries: int = 0
    candidates: int = 0
    match_runs: int = 0
    match_chunks: int = 0
    text_vectors: int = 0


def retention_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=settings.RETENTION_DAYS)


def purge_old_deliveries(cutoff: datetime, batch_size: int) -> tuple[int, int]:
    """Delete one batch of finished deliveries scheduled before `cutoff`, candidates first;
    returns (deliveries, candidates) deleted."""
    with transaction.atomic():
        old = Delivery.objects.filter(status__in=FINISHED, scheduled_for__lt=cutoff).order_by("id")
        if db_connection.vendor == "postgresql":
            old = old.select_for_update(skip_locked=True)
        ids = list(old.values_list("id", flat=True)[:batch_size])
        if not ids:
            return 0, 0
        purged = list(Delivery.objects.filter(id__in=ids, status__in=FINISHED))
        candidates = 0
        # A range per delivery, some hundred to a statement: SQLite parses an OR of thousands of
        # terms into a tree deeper than it allows.
        for group in chunked([d for d in purged if d.holds_any], RANGES_PER_DELETE):
            candidates += Candidate.objects.filter(reduce(operator.or_, (d.holding() for d in group))).delete()[0]
        deliveries = Delivery.objects.filter(id__in=[d.id for d in purged]).delete()[0]
    return deliveries, candidates


def purge_stale_waiting(cutoff: datetime, batch_size: int) -> int:
    """Delete one batch of candidates waiting for a paper first seen before `cutoff`, but none of a
    subscriber with a delivery queued or sending; returns how many."""
    pending = Delivery.objects.filter(status__in=PENDING).values("subscriber_id")
    stale = Candidate.objects.filter(is_waiting(), paper__first_seen__lt=cutoff).exclude(subscriber_id__in=pending)
    # By subscriber: a batch holds as few subscribers' locks as it can.
    rows = list(stale.order_by("subscriber_id", "id").values_list("id", "subscriber_id")[:batch_size])
    if not rows:
        return 0
    with transaction.atomic():
        lock_candidates_of(subscriber_id for _, subscriber_id in rows)
        still = Candidate.objects.filter(is_waiting(), id__in=[candidate_id for candidate_id, _ in rows])
        return still.exclude(subscriber_id__in=pending).delete()[0]


def purge_old_match_runs(cutoff: datetime) -> int:
    newest = MatchRun.objects.filter(finished_at__isnull=False).order_by("-last_paper_id", "-id").first()
    old = MatchRun.objects.filter(Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, started_at__lt=cutoff))
    if newest is not None:
        old = old.exclude(id=newest.id)
    return old.delete()[1].get(MatchRun._meta.label, 0)


def purge_done_match_chunks(now: datetime) -> int:
    return MatchChunk.objects.filter(run__finished_at__lt=now - MATCH_CHUNKS_KEPT).delete()[0]


def purge_unused_vectors(cutoff: datetime, batch_size: int) -> int:
    """Delete one batch of sentence vectors last used before `cutoff`'s day; returns how many."""
    day = timezone.localdate(cutoff)
    keys = list(TextVector.objects.filter(used_on__lt=day).values_list("key", flat=True)[:batch_size])
    if not keys:
        return 0
    return TextVector.objects.filter(key__in=keys, used_on__lt=day).delete()[0]


def purge_old_rows(now: datetime | None = None, batch_size: int | None = None) -> Purged:
    """Delete what is older than RETENTION_DAYS, batch by batch (module docstring: what is kept)."""
    now = now or timezone.now()
    cutoff = retention_cutoff(now)
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    purged = Purged()
    while True:
        deliveries, candidates = purge_old_deliveries(cutoff, batch_size)
        purged.deliveries += deliveries
        purged.candidates += candidates
        if deliveries == 0:
            break
    while (waiting := purge_stale_waiting(cutoff, batch_size)) > 0:
        purged.candidates += waiting
    purged.match_runs = purge_old_match_runs(cutoff)
    purged.match_chunks = purge_done_match_chunks(now)
    while (vectors := purge_unused_vectors(cutoff, batch_size)) > 0:
        purged.text_vectors += vectors
    log_event(log, "retention.purged", cutoff=cutoff.isoformat(), **vars(purged))
    return purged
