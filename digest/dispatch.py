"""Finding the subscribers whose digest is due and queueing their deliveries, exactly once.

Each due subscriber is claimed with a compare-and-set on `next_delivery_at` (only the caller
that moves it from the value it read wins), and the winner creates the subscriber's Delivery row
for the period; the (subscriber, period) unique constraint stops a second row. Only rows created
here are queued, in chunks of ids, once the transaction has committed.
"""

import operator
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import reduce
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from digest.models import Delivery
from digest.scheduling import next_delivery_after, period_key
from subscribers.models import Subscriber

T = TypeVar("T")

SCHEDULE_FIELDS = ("id", "timezone", "frequency", "weekday", "delivery_hour", "next_delivery_at", "status")


def due_subscribers(now: datetime, *, force: bool = False, emails: Iterable[str] | None = None) -> QuerySet:
    """Active subscribers whose slot has come (all active ones with `force`), oldest slot first."""
    subscribers = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE)
    if not force:
        subscribers = subscribers.filter(next_delivery_at__lte=now)
    if emails:
        subscribers = subscribers.filter(reduce(operator.or_, (Q(email__iexact=e.strip()) for e in emails)))
    return subscribers.order_by("next_delivery_at", "id")


def chunked(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def due_moment(subscriber: Subscriber, now: datetime) -> datetime:
    """The slot a digest sent now stands for: the subscriber's due slot, or now when forced early."""
    slot = subscriber.next_delivery_at
    return slot if slot is not None and slot <= now else now


def claim_due(subscriber: Subscriber, now: datetime) -> Delivery | None:
    """Advance the subscriber's slot (compare-and-set) and create the Delivery it was due for.

    Returns the new Delivery, or None when another dispatcher won the slot or the period already
    has a Delivery (e.g. `--now` on a day whose digest went out).
    """
    old = subscriber.next_delivery_at
    due_at = due_moment(subscriber, now)
    claimed = Subscriber.objects.filter(
        id=subscriber.id, status=Subscriber.Status.ACTIVE, next_delivery_at=old
    ).update(next_delivery_at=next_delivery_after(subscriber, now))
    if claimed != 1:
        return None
    delivery, created = Delivery.objects.get_or_create(
        subscriber_id=subscriber.id, period=period_key(subscriber, due_at), defaults={"scheduled_for": due_at}
    )
    return delivery if created else None


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
    due_ids = list(due_subscribers(now, force=force, emails=emails).values_list("id", flat=True))
    created: list[int] = []
    for batch_ids in chunked(due_ids, settings.DIGEST_CHUNK_SIZE):
        batch = Subscriber.objects.filter(id__in=batch_ids).order_by("id").only(*SCHEDULE_FIELDS)
        # One transaction per batch: the slot moves if and only if its Delivery row exists.
        with transaction.atomic():
            batch_ids = [d.id for d in (claim_due(subscriber, now) for subscriber in batch) if d is not None]
            if queue:
                queue_deliveries(batch_ids)
        created.extend(batch_ids)
    return created


def queue_deliveries(delivery_ids: Sequence[int]) -> None:
    """Queue chunks of deliveries once the surrounding transaction commits."""
    from digest.tasks.sending import send_digest_chunk  # the task module imports this one

    for chunk in chunked(list(delivery_ids), settings.DIGEST_CHUNK_SIZE):
        send_digest_chunk.delay_on_commit(chunk)
