"""Sending queued digests: each Delivery is claimed (digest/delivery/claims.py), built, sent and
recorded exactly once.

The rules, in one place:
- Content is fixed on the first attempt: the Delivery takes the subscriber's waiting candidates
  (an id range it records, digest/delivery/claims.py), the best `max_papers` by score go in the
  email and the rest are counted as "and N more" (they stay with this Delivery and its web page;
  they do not roll over, so a later digest only ever has papers that arrived after this one).
  Every retry sends the same papers under the same Message-ID.
- A digest with no papers is `skipped` unless SEND_EMPTY_DIGESTS is on.
- The subscriber is re-checked just before talking to the mail server: anyone no longer active
  gets nothing (`skipped`). The check is made for the next SEND_OUTCOME_BATCH digests of the
  chunk at once, milliseconds before the first of them goes.
- Transient failures (4xx, timeouts, disconnects) go back to `queued` with `next_attempt_at`
  (exponential backoff with jitter) until SEND_MAX_ATTEMPTS; a refused address (a 5xx to RCPT
  TO) is `failed` at once and counts towards the subscriber's BOUNCE_LIMIT; a refused message (a
  5xx to MAIL FROM, DATA or the data, over the server's SIZE, over DIGEST_MAX_BYTES) is `failed`
  at once, counts nothing and raises the alarm (mail/refusals.py, digest/delivery/refusal_alarm.py).
- When most digests tried are refused as messages, sending pauses: the chunk stops, its untried
  digests go back to `queued` for MESSAGE_REFUSAL_PAUSE_SECONDS with their attempt uncounted,
  and chunks that start meanwhile wait too, unclaimed.
- Each digest goes out with its own return path (mail/return_path.py), so its bounces prove
  which digest they answer.
- Over SMTP the server works while the worker builds: a digest is built (its size is declared
  with its envelope), its envelope goes out in one write with the previous digest's data (when
  the server offers PIPELINING), the next digest is built, and only then is the previous one's
  verdict read and recorded.
- Accepted digests are recorded `sent` together, up to SEND_OUTCOME_BATCH in one statement (one
  commit), and always before the worker would wait for a verdict longer than
  SEND_RECORD_GRACE_MS (the server's answer to a message's data is late), at a pause and at the
  end of the chunk; other outcomes are recorded at once. A worker killed mid-chunk may thus
  resend at most SEND_OUTCOME_BATCH digests that the server had accepted (1 records each on its
  own, as a chunk did before), under their Message-IDs; one killed while the server stalls has
  recorded all it sent.
- A chunk is claimed in one transaction. A Delivery left in `sending` longer than
  SENDING_TIMEOUT_SECONDS (its worker died mid-chunk) is claimed again and sent with the same
  Message-ID; a digest the server accepted just before the worker died can thus arrive twice,
  under one Message-ID that mail clients use to show it once.
"""

import logging
import random
import select
import smtplib
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from enum import Enum

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend
from django.db import InterfaceError, OperationalError
from django.db import connection as db_connection
from django.db.models import F
from django.utils import timezone

from config.logging import log_event
from digest.delivery.chunk_timing import chunk_tally
from digest.delivery.claims import claim_chunk, defer_while_paused
from digest.delivery.digest_email import DigestTooLarge, build_digest_within
from digest.delivery.picks import Pick
from digest.delivery.refusal_alarm import most_refused, note_message_refusal, pause_until, sending_paused, tally
from digest.models import Delivery
from digest.plain_sql import asynchronous_commits, ids_among, update_each, update_rows
from mail.refusals import Refusal, smtp_refusal
from mail.return_path import return_path
from mail.send_rate import SendRateLimiter, send_rate_limiter
from mail.smtp_client import UnsendableAddress
from mail.streams import MessageStream, message_stream
from subscribers.models import Subscriber
from subscribers.services import record_bounce

log = logging.getLogger(__name__)


class Outcome(Enum):
    SENT = "sent"
    EMPTY = "empty"
    INACTIVE = "inactive"
    RETRYING = "retrying"
    FAILED = "failed"
    REFUSED = "refused"  # the message, not the address: failed, no bounce counted
    NOT_CLAIMED = "not_claimed"


@dataclass
class ChunkResult:
    sent: int = 0
    empty: int = 0
    inactive: int = 0
    retrying: int = 0
    failed: int = 0
    refused: int = 0
    not_claimed: int = 0
    paused: int = 0  # put back in the queue untried while most digests are refused

    @property
    def tried(self) -> int:
        """Digests the mail server was asked to take."""
        return self.sent + self.retrying + self.failed + self.refused

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def __iadd__(self, other: "ChunkResult") -> "ChunkResult":
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self


@contextmanager
def commits_without_flush() -> Iterator[None]:
    """With SEND_ASYNC_COMMIT on PostgreSQL, let this connection's commits return before the disk
    flush, for a chunk.

    Claims and outcomes are written once per digest; waiting for fsync on each would cap a worker
    at a few hundred digests per second. A worker crash loses nothing (the server has the commit);
    only a database server crash can forget the last fraction of a second of outcomes, and those
    digests are then sent again under the same Message-ID.
    """
    if db_connection.vendor != "postgresql" or not settings.SEND_ASYNC_COMMIT:
        yield
        return
    with asynchronous_commits():
        yield


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: half the doubled delay fixed, half random, capped."""
    ceiling = min(settings.SEND_RETRY_MAX_SECONDS, settings.SEND_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    # S311: jitter spreads retries over time; it guards no secret.
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311


def _waiting_for_the_database(write):
    """Run `write`, reconnecting while the database restarts, for at most half SENDING_TIMEOUT_SECONDS.

    Outcomes are recorded after the mail server has answered: one lost to a database that blinked
    would leave the row to be reclaimed later, and the digest would be sent a second time.
    """
    deadline = time.monotonic() + settings.SENDING_TIMEOUT_SECONDS / 2
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError):
            if db_connection.in_atomic_block or time.monotonic() >= deadline:
                raise
            log.warning("database unavailable while recording a delivery; retrying", exc_info=True)
            db_connection.close()
            time.sleep(0.5)


def _finish(delivery: Delivery, **changes: object) -> bool:
    """Record the outcome, unless the row was taken from us in the meantime."""

    def write() -> int:
        return update_rows(
            Delivery, changes, id=delivery.id, status=Delivery.Status.SENDING, claimed_at=delivery.claimed_at
        )

    done = _waiting_for_the_database(write) == 1
    if not done:
        log.warning("delivery %s was reclaimed while its worker still held it", delivery.id)
    return done


def close_quietly(connection: BaseEmailBackend) -> None:
    try:
        connection.close()
    except Exception:  # a dead connection may fail to say QUIT; the next open() starts afresh
        if isinstance(connection, DjangoSmtpBackend) and connection.connection is not None:
            connection.connection = None


@dataclass
class Ready:
    """A digest built and about to go: its envelope, with the message's size, is begun next."""

    delivery: Delivery
    subscriber: Subscriber
    message: EmailMultiAlternatives
    data: bytes  # what goes on the wire
    handle: object = None  # the stream's handle on the message, once begun


@dataclass
class InFlight:
    """A digest whose data is with the mail server and whose verdict is still to be read."""

    delivery: Delivery
    subject: str
    handle: object


@dataclass
class Chunk:
    """What sending one chunk's digests over one connection works with."""

    pending: deque[Delivery]  # claimed and not yet looked at
    subscribers: dict[int, Subscriber]
    papers: dict[int, list[Pick]]
    connection: BaseEmailBackend
    stream: MessageStream
    limiter: SendRateLimiter
    result: ChunkResult
    active: dict[int, bool] = dataclass_field(default_factory=dict)  # the last look, per subscriber
    unrecorded: list[tuple[Delivery, str, datetime]] = dataclass_field(
        default_factory=list
    )  # accepted: sent, subject, when


def still_active(chunk: Chunk, delivery: Delivery) -> bool:
    """The last look before the mail server, taken for this digest's subscriber and those of the
    next SEND_OUTCOME_BATCH - 1 digests in one query."""
    if delivery.subscriber_id not in chunk.active:
        ahead = [delivery.subscriber_id]
        ahead += [d.subscriber_id for d in list(chunk.pending)[: settings.SEND_OUTCOME_BATCH - 1]]
        found = ids_among(Subscriber, ahead, status=Subscriber.Status.ACTIVE)
        chunk.active = {subscriber_id: subscriber_id in found for subscriber_id in ahead}
    return chunk.active.pop(delivery.subscriber_id)


def record_sent(chunk: Chunk) -> None:
    """Record the accepted digests not yet recorded, in one statement per claim (a chunk has one)."""
    while chunk.unrecorded:
        claimed_at = chunk.unrecorded[0][0].claimed_at
        rows = {
            d.id: (sent_at, subject[:300]) for d, subject, sent_at in chunk.unrecorded if d.claimed_at == claimed_at
        }

        def write(rows: dict = rows, claimed_at: datetime | None = claimed_at) -> int:
            return update_each(
                Delivery,
                ("sent_at", "subject"),
                rows,
                same={"status": Delivery.Status.SENT, "next_attempt_at": None, "last_error": ""},
                where={"status": Delivery.Status.SENDING, "claimed_at": claimed_at},
            )

        recorded = _waiting_for_the_database(write)
        chunk.unrecorded = [item for item in chunk.unrecorded if item[0].claimed_at != claimed_at]
        if recorded != len(rows):
            log.warning("%d sent deliveries were reclaimed while their worker still held them", len(rows) - recorded)


def answer_arrived(connection: BaseEmailBackend, within: float = 0) -> bool:
    """Whether the mail server's next answer is here, or arrives within `within` seconds, so that
    reading it will not wait longer (False when unknown: the caller then records what it holds
    before reading)."""
    sock = getattr(getattr(connection, "connection", None), "sock", None)
    if sock is None:
        return False
    try:
        return bool(select.select([sock], [], [], within)[0])
    except (OSError, ValueError):
        return False


def before_waiting(chunk: Chunk) -> None:
    """About to read an answer from the mail server: record the accepted digests first, unless
    the answer is here within SEND_RECORD_GRACE_MS. A worker killed while the server is slower
    than that has recorded what it sent.

    The grace costs nothing when the answer is late anyway (the commit's own wait for the disk,
    several milliseconds, is longer), and saves a commit whenever the server is only a little
    slower than the worker: without it a fast worker committed after every three digests.
    """
    grace = settings.SEND_RECORD_GRACE_MS / 1000
    if chunk.unrecorded and not answer_arrived(chunk.connection, within=grace):
        record_sent(chunk)


def skipped_outcome(delivery: Delivery, subscriber: Subscriber | None) -> Outcome | None:
    """Record and return why a claimed digest is not to be sent, or None when it is."""
    if subscriber is None:
        _finish(delivery, status=Delivery.Status.SKIPPED, last_error="subscriber no longer active")
        return Outcome.INACTIVE
    if delivery.paper_count == 0 and not settings.SEND_EMPTY_DIGESTS:
        _finish(delivery, status=Delivery.Status.SKIPPED, last_error="")
        return Outcome.EMPTY
    return None


def _connection_kept(error: Exception) -> bool:
    """A refusal in words leaves the SMTP connection usable (the client reset it, or hung up on
    a 421), as does an address refused before anything was written; anything else (a timeout, a
    provider's error) may have left it in a bad state."""
    return isinstance(error, (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, UnsendableAddress))


def _failed(delivery: Delivery, error: Exception, connection: BaseEmailBackend, subject: str | None) -> Outcome:
    if not _connection_kept(error):
        close_quietly(connection)
    return _record_failure(delivery, error, subject=subject)


def next_built(chunk: Chunk) -> Ready | None:
    """The next claimed digest to send, built; those not to be sent are recorded on the way."""
    while chunk.pending:
        delivery = chunk.pending.popleft()
        subscriber = chunk.subscribers.get(delivery.subscriber_id)
        skipped = skipped_outcome(delivery, subscriber)
        if skipped:
            chunk.result.count(skipped)
            continue
        if subscriber is None:  # never: skipped_outcome recorded it; for the type checker
            continue
        chunk.limiter.acquire()
        # The last look before the mail server: someone who left since the claim gets nothing.
        if not still_active(chunk, delivery):
            _finish(delivery, status=Delivery.Status.SKIPPED, last_error="subscriber no longer active")
            chunk.result.count(Outcome.INACTIVE)
            continue
        try:
            message, data = build_digest_within(
                subscriber,
                chunk.papers[delivery.id],
                delivery.more_count,
                settings.DIGEST_MAX_BYTES,
                delivery=delivery,
                message_id=delivery.message_id,
                connection=chunk.connection,
            )
        except DigestTooLarge as error:
            chunk.result.count(_record_failure(delivery, error, subject=None))
            continue
        return Ready(delivery, subscriber, message, data)
    return None


def begun(chunk: Chunk, ready: Ready | None) -> Ready | None:
    """`ready` with its envelope begun (its return path and size), or the next digest whose
    envelope could be begun; those refused on the way are recorded."""
    while ready is not None:
        try:
            ready.handle = chunk.stream.begin(
                return_path(ready.delivery.id), ready.subscriber.email, size=len(ready.data)
            )
        except Exception as error:
            chunk.result.count(_failed(ready.delivery, error, chunk.connection, subject=str(ready.message.subject)))
            ready = next_built(chunk)
            continue
        return ready
    return None


def hand_over(ready: Ready, chunk: Chunk) -> Outcome | InFlight:
    """Queue a built digest's data behind its accepted envelope (written with the next envelope)."""
    try:
        chunk.stream.accept(ready.handle)
        chunk.stream.send(ready.handle, ready.message, ready.data)
    except Exception as error:
        return _failed(ready.delivery, error, chunk.connection, subject=str(ready.message.subject))
    return InFlight(ready.delivery, str(ready.message.subject), ready.handle)


def land(flight: InFlight, chunk: Chunk) -> Outcome:
    """Read the server's verdict on a digest in flight; an accepted one joins those to record."""
    try:
        chunk.stream.flush()  # the chunk's last data may still be queued: the verdict waits for it
    except Exception as error:
        return _failed(flight.delivery, error, chunk.connection, subject=flight.subject)
    before_waiting(chunk)
    try:
        chunk.stream.verdict(flight.handle)
    except Exception as error:
        return _failed(flight.delivery, error, chunk.connection, subject=flight.subject)
    chunk.unrecorded.append((flight.delivery, flight.subject, timezone.now()))
    if len(chunk.unrecorded) >= settings.SEND_OUTCOME_BATCH:
        record_sent(chunk)
    return Outcome.SENT


def send_claimed(
    claimed: list[Delivery],
    subscribers: dict[int, Subscriber],
    papers: dict[int, list[Pick]],
    connection: BaseEmailBackend,
    limiter: SendRateLimiter,
    result: ChunkResult,
) -> None:
    """Build and send each claimed digest over `connection`, and record what happened to each.

    Per digest: it is built before its envelope is begun (the envelope declares its size); its
    envelope is written with the previous digest's data; the next digest is built while the server
    reads both; then the previous digest's verdict is read and recorded, and this digest's data
    queued. Should most digests tried be refused as messages, the chunk stops there (`pause`).
    """
    chunk = Chunk(deque(claimed), subscribers, papers, connection, message_stream(connection), limiter, result)
    ready = begun(chunk, next_built(chunk))
    in_flight: InFlight | None = None
    try:
        while ready is not None:
            chunk.stream.flush()
            following = next_built(chunk)
            if in_flight is not None:
                result.count(land(in_flight, chunk))
                in_flight = None
            if most_refused(result.tried, result.refused):
                pause(chunk, [ready.delivery, *([following.delivery] if following else []), *chunk.pending])
                break
            handed = hand_over(ready, chunk)
            if isinstance(handed, InFlight):
                in_flight = handed
            else:
                result.count(handed)
            ready = begun(chunk, following)
    finally:
        try:
            if in_flight is not None:
                result.count(land(in_flight, chunk))
        finally:
            try:
                record_sent(chunk)
            finally:
                close_quietly(connection)


def pause(chunk: Chunk, untried: list[Delivery]) -> None:
    """Most digests tried were refused as messages: the untried ones go back to the queue until the
    pause ends, their attempt not counted (digest/delivery/refusal_alarm.py)."""
    record_sent(chunk)
    until = pause_until(timezone.now())
    ids, claims = [d.id for d in untried], {d.claimed_at for d in untried}

    def write() -> int:
        return Delivery.objects.filter(id__in=ids, status=Delivery.Status.SENDING, claimed_at__in=claims).update(
            status=Delivery.Status.QUEUED, attempts=F("attempts") - 1, next_attempt_at=until, queued_at=None
        )

    chunk.result.paused += _waiting_for_the_database(write) if ids else 0
    log_event(
        log,
        "send.paused",
        level=logging.ERROR,
        tried=chunk.result.tried,
        refused=chunk.result.refused,
        requeued=chunk.result.paused,
        until=until.isoformat(),
    )


def _record_failure(delivery: Delivery, error: Exception, *, subject: str | None) -> Outcome:
    """Record a digest that did not go: a refused address counts towards BOUNCE_LIMIT, a refused
    message fails alone and raises the alarm, anything else is tried again later
    (mail/refusals.py says which is which)."""
    reason = f"{type(error).__name__}: {error}"[:2000]
    subject = (delivery.subject if subject is None else subject)[:300]
    if isinstance(error, UnsendableAddress):
        _finish(delivery, status=Delivery.Status.FAILED, last_error=reason, subject=subject, next_attempt_at=None)
        return Outcome.FAILED
    refusal = Refusal.MESSAGE if isinstance(error, DigestTooLarge) else smtp_refusal(error)
    if refusal is Refusal.RECIPIENT:
        if _finish(delivery, status=Delivery.Status.FAILED, last_error=reason, subject=subject, next_attempt_at=None):
            record_bounce(delivery.subscriber_id)
        return Outcome.FAILED
    if refusal is Refusal.MESSAGE:
        refused = f"message refused: {reason}"[:2000]
        if _finish(delivery, status=Delivery.Status.FAILED, last_error=refused, subject=subject, next_attempt_at=None):
            note_message_refusal(delivery.id, reason, source="smtp")
        return Outcome.REFUSED
    # Transient, and a full mailbox (RFC 3463 calls 5.2.2 a persistent transient failure).
    if delivery.attempts >= settings.SEND_MAX_ATTEMPTS:
        _finish(delivery, status=Delivery.Status.FAILED, last_error=f"gave up: {reason}", subject=subject)
        return Outcome.FAILED
    _finish(
        delivery,
        status=Delivery.Status.QUEUED,
        queued_at=None,
        next_attempt_at=timezone.now() + retry_delay(delivery.attempts),
        last_error=reason,
        subject=subject,
    )
    return Outcome.RETRYING


def send_delivery_chunk(delivery_ids: list[int], connection: BaseEmailBackend | None = None) -> ChunkResult:
    """Claim, build and send a chunk of deliveries over one reused connection; safe to run twice.

    The chunk is claimed in one transaction, so a worker killed halfway leaves its unsent rows in
    `sending` until SENDING_TIMEOUT_SECONDS, when they are claimed again. While most recent
    digests are refused as messages, the chunk is not claimed: it waits for the pause to end.
    """
    started = time.perf_counter()
    connection = connection or get_connection()
    limiter = send_rate_limiter()
    result = ChunkResult(not_claimed=len(set(delivery_ids)))
    with commits_without_flush():
        now = timezone.now()
        if sending_paused(now):
            result.paused = defer_while_paused(list(delivery_ids), now)
            result.not_claimed -= result.paused
        else:
            claimed, subscribers, papers = claim_chunk(list(delivery_ids), now)
            result.not_claimed -= len(claimed)
            send_claimed(claimed, subscribers, papers, connection, limiter, result)
            timing = chunk_tally(time.perf_counter() - started, len(claimed)) if claimed else None
            tally(result.tried, result.refused, chunk=timing)
    log_event(
        log,
        "send.chunk",
        deliveries=len(delivery_ids),
        first_id=min(delivery_ids, default=None),
        **vars(result),
        ms=round((time.perf_counter() - started) * 1000),
    )
    return result
