"""Sending queued digests: each Delivery is claimed, built, sent and recorded exactly once.

Claiming moves a Delivery from `queued` to `sending` atomically (`select_for_update(skip_locked=
True)` on PostgreSQL, a compare-and-set elsewhere), so a task that runs twice, or two workers
given the same ids, never send the same digest twice.

The rules, in one place:
- Content is fixed on the first attempt: the subscriber's waiting candidates are attached to the
  Delivery, the best `max_papers` by score go in the email and the rest are counted as "and N
  more" (they stay with this Delivery and its web page; they do not roll over, so a later digest
  only ever has papers that arrived after this one). Every retry sends the same papers under the
  same Message-ID.
- A digest with no papers is `skipped` unless SEND_EMPTY_DIGESTS is on.
- The subscriber is re-checked just before talking to the mail server: anyone no longer active
  gets nothing (`skipped`).
- Transient failures (4xx, timeouts, disconnects) go back to `queued` with `next_attempt_at`
  (exponential backoff with jitter) until SEND_MAX_ATTEMPTS; permanent ones (5xx for the
  recipient) are `failed` at once and count towards the subscriber's BOUNCE_LIMIT.
- A Delivery left in `sending` longer than SENDING_TIMEOUT_SECONDS (its worker died mid-send) is
  claimed again and sent with the same Message-ID.
"""

import logging
import random
import smtplib
import time
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import Enum

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.logevents import log_event
from digest.digest_email import build_digest_message
from digest.models import Candidate, Delivery
from digest.send_rate import SendRateLimiter, send_rate_limiter
from subscribers.emails import new_message_id
from subscribers.models import Subscriber

log = logging.getLogger(__name__)


class Outcome(Enum):
    SENT = "sent"
    EMPTY = "empty"
    INACTIVE = "inactive"
    RETRYING = "retrying"
    FAILED = "failed"
    NOT_CLAIMED = "not_claimed"


@dataclass
class ChunkResult:
    sent: int = 0
    empty: int = 0
    inactive: int = 0
    retrying: int = 0
    failed: int = 0
    not_claimed: int = 0

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def __iadd__(self, other: "ChunkResult") -> "ChunkResult":
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self


def claimable(now: datetime) -> Q:
    """Deliveries a worker may take: queued and due, or abandoned in `sending` by a dead worker."""
    stale = now - timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return (
        (Q(status=Delivery.Status.QUEUED) & due) | Q(status=Delivery.Status.SENDING, claimed_at__lt=stale)
    ) & Q(attempts__lt=settings.SEND_MAX_ATTEMPTS)


def claim_delivery(delivery_id: int, now: datetime) -> Delivery | None:
    """Move one Delivery to `sending` if it is claimable; None if it is done or someone has it."""
    claim = {"status": Delivery.Status.SENDING, "claimed_at": now, "attempts": F("attempts") + 1}
    with transaction.atomic():
        rows = Delivery.objects.filter(claimable(now), id=delivery_id)
        if db_connection.vendor == "postgresql":
            delivery = rows.select_for_update(skip_locked=True).first()
            if delivery is None:
                return None
            Delivery.objects.filter(id=delivery.id).update(**claim)
        else:
            delivery = rows.first()
            if delivery is None:
                return None
            seen = {"status": delivery.status, "claimed_at": delivery.claimed_at, "attempts": delivery.attempts}
            if Delivery.objects.filter(id=delivery.id, **seen).update(**claim) != 1:
                return None
    delivery.status, delivery.claimed_at, delivery.attempts = Delivery.Status.SENDING, now, delivery.attempts + 1
    return delivery


def waiting_candidates(subscriber_id: int) -> list[int]:
    """Ids of the subscriber's candidates not yet in any digest, best first."""
    rows = Candidate.objects.filter(subscriber_id=subscriber_id, delivery__isnull=True)
    return list(rows.order_by("-score", "id").values_list("id", flat=True))


def pick_papers(subscriber: Subscriber) -> tuple[list[Candidate], int]:
    """The candidates a digest built now would show, and how many more matched (reads only)."""
    waiting = waiting_candidates(subscriber.id)
    shown = waiting[: subscriber.max_papers]
    chosen = Candidate.objects.filter(id__in=shown).select_related("paper").order_by("-score", "id")
    return list(chosen), len(waiting) - len(shown)


def fix_content(delivery: Delivery, subscriber: Subscriber) -> None:
    """On the first attempt, attach the waiting candidates and give the digest its Message-ID."""
    if delivery.message_id:
        return
    with transaction.atomic():
        waiting = waiting_candidates(subscriber.id)
        Candidate.objects.filter(id__in=waiting, delivery__isnull=True).update(delivery=delivery)
        delivery.paper_count = min(len(waiting), subscriber.max_papers)
        delivery.more_count = len(waiting) - delivery.paper_count
        delivery.message_id = new_message_id()
        delivery.save(update_fields=["paper_count", "more_count", "message_id"])


def digest_papers(delivery: Delivery) -> list[Candidate]:
    rows = Candidate.objects.filter(delivery=delivery).select_related("paper").order_by("-score", "id")
    return list(rows[: delivery.paper_count])


def is_permanent_refusal(error: Exception) -> bool:
    """True when the server refused this recipient for good (5xx), not for now."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPSenderRefused):
        return False  # our sender's problem, not the subscriber's: retry, never count a bounce
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    try:
        from anymail.exceptions import AnymailRecipientsRefused
    except ImportError:  # pragma: no cover - anymail is installed
        return False
    return isinstance(error, AnymailRecipientsRefused)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: half the doubled delay fixed, half random, capped."""
    ceiling = min(settings.SEND_RETRY_MAX_SECONDS, settings.SEND_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    # Bandit: jitter spreads retries over time; it guards no secret.
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))  # nosec B311


def _finish(delivery: Delivery, **changes) -> bool:
    """Record the outcome, unless the row was taken from us in the meantime."""
    updated = Delivery.objects.filter(id=delivery.id, status=Delivery.Status.SENDING, claimed_at=delivery.claimed_at)
    done = updated.update(**changes) == 1
    if not done:
        log.warning("delivery %s was reclaimed while its worker still held it", delivery.id)
    return done


def record_bounce(subscriber_id: int) -> None:
    Subscriber.objects.filter(id=subscriber_id).update(bounce_count=F("bounce_count") + 1)
    Subscriber.objects.filter(
        id=subscriber_id, status=Subscriber.Status.ACTIVE, bounce_count__gte=settings.BOUNCE_LIMIT
    ).update(status=Subscriber.Status.BOUNCED, next_delivery_at=None)


def close_quietly(connection) -> None:
    try:
        connection.close()
    except Exception:  # a dead connection may fail to say QUIT; the next open() starts afresh
        if getattr(connection, "connection", None) is not None:
            connection.connection = None


def send_delivery(delivery: Delivery, connection, limiter: SendRateLimiter) -> Outcome:
    """Build and send one claimed Delivery over `connection`, and record what happened."""
    limiter.acquire()
    subscriber = Subscriber.objects.prefetch_related("topics").filter(id=delivery.subscriber_id).first()
    if subscriber is None or subscriber.status != Subscriber.Status.ACTIVE:
        _finish(delivery, status=Delivery.Status.SKIPPED, last_error="subscriber no longer active")
        return Outcome.INACTIVE
    fix_content(delivery, subscriber)
    if delivery.paper_count == 0 and not settings.SEND_EMPTY_DIGESTS:
        _finish(delivery, status=Delivery.Status.SKIPPED, last_error="")
        return Outcome.EMPTY
    message = build_digest_message(
        subscriber,
        digest_papers(delivery),
        delivery.more_count,
        delivery=delivery,
        message_id=delivery.message_id,
        connection=connection,
    )
    try:
        connection.open()
        connection.send_messages([message])
    except Exception as error:
        close_quietly(connection)
        return _record_failure(delivery, error, subject=message.subject)
    _finish(
        delivery,
        status=Delivery.Status.SENT,
        sent_at=timezone.now(),
        subject=message.subject[:300],
        next_attempt_at=None,
        last_error="",
    )
    return Outcome.SENT


def _record_failure(delivery: Delivery, error: Exception, *, subject: str) -> Outcome:
    reason = f"{type(error).__name__}: {error}"[:2000]
    if is_permanent_refusal(error):
        if _finish(delivery, status=Delivery.Status.FAILED, last_error=reason, subject=subject[:300], next_attempt_at=None):
            record_bounce(delivery.subscriber_id)
        return Outcome.FAILED
    if delivery.attempts >= settings.SEND_MAX_ATTEMPTS:
        _finish(delivery, status=Delivery.Status.FAILED, last_error=f"gave up: {reason}", subject=subject[:300])
        return Outcome.FAILED
    _finish(
        delivery,
        status=Delivery.Status.QUEUED,
        next_attempt_at=timezone.now() + retry_delay(delivery.attempts),
        last_error=reason,
        subject=subject[:300],
    )
    return Outcome.RETRYING


def send_delivery_chunk(delivery_ids: list[int], connection=None) -> ChunkResult:
    """Send a chunk of deliveries over one reused connection; safe to run twice."""
    started = time.perf_counter()
    connection = connection or get_connection()
    limiter = send_rate_limiter()
    result = ChunkResult()
    try:
        for delivery_id in delivery_ids:
            delivery = claim_delivery(delivery_id, timezone.now())
            if delivery is None:
                result.count(Outcome.NOT_CLAIMED)
                continue
            result.count(send_delivery(delivery, connection, limiter))
    finally:
        close_quietly(connection)
    log_event(
        log, "send.chunk", deliveries=len(delivery_ids), first_id=min(delivery_ids, default=None), **vars(result),
        ms=round((time.perf_counter() - started) * 1000),
    )
    return result


def due_retries(now: datetime) -> list[int]:
    """Deliveries to queue again: retries whose time has come, and rows a dead worker left behind.

    A queued row older than SENDING_TIMEOUT_SECONDS that never got a first attempt is included
    too, in case its task was lost with a broker.
    """
    stale = now - timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
    forgotten = Q(status=Delivery.Status.QUEUED, next_attempt_at__isnull=True, created_at__lt=stale)
    rows = Delivery.objects.filter(claimable(now) & (Q(next_attempt_at__isnull=False) | ~Q(status=Delivery.Status.QUEUED)) | forgotten)
    return list(rows.order_by("id").values_list("id", flat=True))


def give_up_abandoned(now: datetime) -> int:
    """Rows left in `sending` after their last allowed attempt are failed, not retried forever."""
    stale = now - timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
    return Delivery.objects.filter(
        status=Delivery.Status.SENDING, claimed_at__lt=stale, attempts__gte=settings.SEND_MAX_ATTEMPTS
    ).update(status=Delivery.Status.FAILED, last_error="gave up: worker lost during the last attempt")
