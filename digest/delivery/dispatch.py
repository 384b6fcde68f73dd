"""Finding the subscribers whose digest is due and queueing their deliveries, exactly once.

Due subscribers are listed, then claimed a batch at a time: each batch's rows are locked and read
by id, and those still due have their `next_delivery_at` moved and their Delivery row for the
period created in the same transaction; the (subscriber, period) unique constraint stops a second
row. Only rows created here are queued, in chunks of ids, once the transaction has committed.
"""

import operator
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import reduce

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.utils import timezone

from config.celery import queue_on_commit
from digest.chunks import chunked
from digest.models import Delivery
from digest.plain_sql import insert_rows
from subscribers.models import Subscriber
from subscribers.scheduling import next_delivery_after, period_key, schedule_subscriber

# Subscribers claimed per transaction: each commit waits for the disk, so a busy slot of 100,000
# is claimed in a hundred of them; the deliveries are still queued in DIGEST_CHUNK_SIZE chunks.
DISPATCH_BATCH_SIZE = 1000
SCHEDULE_FIELDS = ("id", "timezone", "frequency", "weekday", "delivery_hour", "next_delivery_at", "status")


def due(now: datetime, *, force: bool = False) -> Q:
    """Subscribers whose digest is due: active, and their slot has come (any active one with `force`)."""
    condition = Q(status=Subscriber.Status.ACTIVE)
    return condition if force else condition & Q(next_delivery_at__lte=now)


def due_subscribers(now: datetime, *, force: bool = False, emails: Iterable[str] | None = None) -> QuerySet:
    """The due subscribers, oldest slot first."""
    subscribers = Subscriber.objects.filter(due(now, force=force))
    if emails:
        subscribers = subscribers.filter(reduce(operator.or_, (Q(email__iexact=e.strip()) for e in emails)))
    return subscribers.order_by("next_delivery_at", "id")


def schedule_unscheduled(now: datetime) -> int:
    """Give a slot to active subscribers who have none (e.g. activated in the admin or a script)."""
    unscheduled = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE, next_delivery_at__isnull=True)
    subscribers = list(unscheduled.only(*SCHEDULE_FIELDS))
    for subscriber in subscribers:
        schedule_subscriber(subscriber, now)
    return len(subscribers)


def due_moment(subscriber: Subscriber, now: datetime) -> datetime:
    """The slot a digest sent now stands for: the subscriber's due slot, or now when forced early."""
    slot = subscriber.next_delivery_at
    return slot if slot is not None and slot <= now else now


def claim_batch(subscriber_ids: Sequence[int], now: datetime, *, force: bool = False) -> list[Subscriber]:
    """Lock the listed subscribers, and move the slots of those still due; returns those.

    Call it inside the transaction that creates their deliveries: the slot moves if and only if
    the Delivery row exists.
    1. Read the listed rows by id, in id order, each with whether it is due now, locked until the
       transaction ends (PostgreSQL; SQLite runs it under its write lock). A second dispatcher
       holding some of them is waited for, and its moved slots are what is read, so an overdue
       slot moved past now is not claimed again for a second, later period.
       Being due is computed, not filtered on, so the rows are found by primary key whatever the
       planner's statistics say: filtered, PostgreSQL read the whole status index (every active
       subscriber) or the slot's entries (every due one) for each batch, so what a batch read
       grew with the table. The lock is NO KEY UPDATE, what the slot's update takes anyway:
       rows that refer to the subscriber (matches, clicks) can still be inserted meanwhile.
    2. One UPDATE per next slot (most of a batch shares one: same zone, hour and frequency)
       moves the due rows' slots, by id: they are locked, so it changes every one.
    """
    due_now = ExpressionWrapper(due(now, force=force), output_field=BooleanField())
    rows = (
        Subscriber.objects.filter(id__in=subscriber_ids)
        .only(*SCHEDULE_FIELDS)
        .annotate(due_now=due_now)
        .order_by("id")
        .select_for_update(no_key=True, of=("self",))
    )
    claimed: list[Subscriber] = [subscriber for subscriber in rows if subscriber.due_now]
    moved_to: dict[datetime, list[int]] = defaultdict(list)
    for subscriber in claimed:
        moved_to[next_delivery_after(subscriber, now)].append(subscriber.id)
    for next_slot, ids in moved_to.items():
        Subscriber.objects.filter(id__in=ids).update(next_delivery_at=next_slot)
    return claimed


def create_deliveries(winners: list[Subscriber], now: datetime) -> list[int]:
    """A Delivery per subscriber for the period they were due; ids of the rows created here.

    A period that already has its Delivery (e.g. `--now` on a day whose digest went out) gets
    no second one, and is not queued again: the unique (subscriber, period) constraint skips it,
    and the insert returns the rows it created.
    """
    due_at = {s.id: due_moment(s, now) for s in winners}
    wanted = {(s.id, period_key(s, due_at[s.id])) for s in winners}
    created = insert_rows(
        Delivery,
        [
            {"subscriber_id": sid, "period": period, "scheduled_for": due_at[sid], "queued_at": now}
            for sid, period in sorted(wanted)
        ],
        ignore_conflicts=True,
        returning=("id",),
    )
    return sorted(delivery_id for (delivery_id,) in created)


def dispatch_due(
    now: datetime | None = None,
    *,
    force: bool = False,
    emails: Iterable[str] | None = None,
    queue: bool = True,
) -> list[int]:
    """Claim every due subscriber and create their Delivery rows; returns the new delivery ids.

    With `queue` (the default), the ids are queued to the workers in chunks after commit;
    `senddigests` passes `queue=False` and sends them itself.
    """
    now = now or timezone.now()
    schedule_unscheduled(now)
    due_ids = list(due_subscribers(now, force=force, emails=emails).values_list("id", flat=True))
    created: list[int] = []
    for batch_ids in chunked(due_ids, DISPATCH_BATCH_SIZE):
        with transaction.atomic():
            batch_ids = create_deliveries(claim_batch(batch_ids, now, force=force), now)
            if queue:
                queue_deliveries(batch_ids)
        created.extend(batch_ids)
    return created


def queue_deliveries(delivery_ids: Sequence[int]) -> None:
    """Queue chunks of deliveries once the surrounding transaction commits."""
    for chunk in chunked(list(delivery_ids), settings.DIGEST_CHUNK_SIZE):
        queue_on_commit("digest.send_digest_chunk", chunk)
