"""Finding the subscribers whose digest is due and queueing their deliveries, exactly once.

Each due subscriber is claimed with a compare-and-set on `next_delivery_at` (only the caller
that moves it from the value it read wins), and the winner creates the subscriber's Delivery row
for the period; the (subscriber, period) unique constraint stops a second row. Only rows created
here are queued, in chunks of ids, once the transaction has committed.

Subscribers whose slot moves from the same instant to the same instant (same zone, hour and
frequency: most of a busy slot) are moved by one statement for the group; should another writer
have moved any of them first, that statement is undone and each is claimed on its own.
"""

import operator
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import reduce
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from config.celery import queue_on_commit
from digest.chunks import chunked
from digest.models import Delivery
from digest.plain_sql import insert_rows
from subscribers.models import Subscriber
from subscribers.scheduling import next_delivery_after, period_key, schedule_subscriber

T = TypeVar("T")

# Subscribers claimed per transaction: each commit waits for the disk, so a busy slot of 100,000
# is claimed in a hundred of them; the deliveries are still queued in DIGEST_CHUNK_SIZE chunks.
DISPATCH_BATCH_SIZE = 1000
SCHEDULE_FIELDS = ("id", "timezone", "frequency", "weekday", "delivery_hour", "next_delivery_at", "status")


def due_subscribers(now: datetime, *, force: bool = False, emails: Iterable[str] | None = None) -> QuerySet:
    """Active subscribers whose slot has come (all active ones with `force`), oldest slot first."""
    subscribers = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE)
    if not force:
        subscribers = subscribers.filter(next_delivery_at__lte=now)
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


def advance_slot(subscriber: Subscriber, now: datetime) -> bool:
    """Move the subscriber's slot past `now` if nobody else moved it first (compare-and-set)."""
    return (
        Subscriber.objects.filter(
            id=subscriber.id, status=Subscriber.Status.ACTIVE, next_delivery_at=subscriber.next_delivery_at
        ).update(next_delivery_at=next_delivery_after(subscriber, now))
        == 1
    )


def advance_slots(subscribers: list[Subscriber], now: datetime) -> list[Subscriber]:
    """`advance_slot` for many subscribers; returns those whose slot this call moved."""
    groups: dict[tuple[datetime | None, datetime], list[Subscriber]] = defaultdict(list)
    for subscriber in subscribers:
        groups[(subscriber.next_delivery_at, next_delivery_after(subscriber, now))].append(subscriber)
    moved = []
    for (slot, next_slot), members in groups.items():
        if len(members) > 1 and _advance_group(members, slot, next_slot):
            moved += members
        else:
            moved += [subscriber for subscriber in members if advance_slot(subscriber, now)]
    return moved


class _Contended(Exception):
    pass


def _advance_group(members: list[Subscriber], slot: datetime | None, next_slot: datetime) -> bool:
    """Move every member from `slot` to `next_slot` in one statement, or none of them."""
    ids = [subscriber.id for subscriber in members]
    try:
        with transaction.atomic():
            moved = Subscriber.objects.filter(id__in=ids, status=Subscriber.Status.ACTIVE, next_delivery_at=slot)
            if moved.update(next_delivery_at=next_slot) != len(ids):
                raise _Contended
    except _Contended:
        return False
    return True


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
        # Still due? Another dispatcher may have moved slots since the ids were listed, and an
        # overdue slot moved past now must not be claimed again for a second, later period.
        batch = due_subscribers(now, force=force).filter(id__in=batch_ids).order_by("id").only(*SCHEDULE_FIELDS)
        # One transaction per batch: the slot moves if and only if its Delivery row exists.
        with transaction.atomic():
            batch_ids = create_deliveries(advance_slots(list(batch), now), now)
            if queue:
                queue_deliveries(batch_ids)
        created.extend(batch_ids)
    return created


def queue_deliveries(delivery_ids: Sequence[int]) -> None:
    """Queue chunks of deliveries once the surrounding transaction commits."""
    for chunk in chunked(list(delivery_ids), settings.DIGEST_CHUNK_SIZE):
        queue_on_commit("digest.send_digest_chunk", chunk)
