"""The alarm for refused messages: a tally per minute, the rate /healthz and the dashboard show, and
the pause that stops sending into a wall.

A message refusal (mail/refusals.py) is not the reader's fault, and it is rarely alone: a DMARC
failure, a block list or a content filter refuses every digest. Each one is logged
(`mail.message_refused`); the send loop adds a chunk's digests tried and refused to the minute's
`SendTally` row in one statement, and a DSN reporting a message refusal adds one.

- /healthz says "degraded" when, over the last MESSAGE_REFUSAL_WINDOW_MINUTES, at least
  ALARM_MIN_REFUSALS digests were refused as messages and they are more than
  MESSAGE_REFUSAL_ALARM_RATE of those tried.
- Sending pauses when most digests are refused (`most_refused`): a chunk stops once more than half
  of the digests it tried, and at least PAUSE_MIN_REFUSALS, were refused as messages, and a chunk
  does not start while that is true of the last MESSAGE_REFUSAL_PAUSE_SECONDS. Its untried digests
  go back to the queue for that long, their attempt not counted (digest/delivery/sending.py).
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from config.logging import log_event
from digest.models import SendTally
from digest.plain_sql import insert_or_add

log = logging.getLogger(__name__)

ALARM_MIN_REFUSALS = 5
# Fewer refusals than this prove nothing about a server: a few readers at one strict domain.
PAUSE_MIN_REFUSALS = 5
TALLY_KEPT = timedelta(days=7)


@dataclass(frozen=True)
class RefusalRate:
    tried: int
    refused: int
    minutes: int

    @property
    def rate(self) -> float:
        if not self.tried:
            return 1.0 if self.refused else 0.0
        return min(self.refused / self.tried, 1.0)

    @property
    def alarming(self) -> bool:
        return self.refused >= ALARM_MIN_REFUSALS and self.refused > settings.MESSAGE_REFUSAL_ALARM_RATE * self.tried


def most_refused(tried: int, refused: int) -> bool:
    """More than half of the digests tried, and at least PAUSE_MIN_REFUSALS, refused as messages."""
    return refused >= PAUSE_MIN_REFUSALS and refused * 2 > tried


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def tally(tried: int, refused: int, now: datetime | None = None, chunk: Mapping[str, int] | None = None) -> None:
    """Add to this minute's counts, in one statement whoever else writes the same minute; a send
    chunk adds its timing with them (`chunk`: digest/delivery/chunk_timing.py)."""
    if not (tried or refused or chunk):
        return
    counts = {"tried": tried, "message_refusals": refused, **(chunk or {})}
    insert_or_add(SendTally, {"minute": _minute(now or timezone.now())}, counts)


def forget_old_tallies(now: datetime) -> int:
    return SendTally.objects.filter(minute__lt=now - TALLY_KEPT).delete()[0]


def refusals_since(since: datetime, minutes: int) -> RefusalRate:
    totals = SendTally.objects.filter(minute__gt=since).aggregate(tried=Sum("tried"), refused=Sum("message_refusals"))
    return RefusalRate(tried=totals["tried"] or 0, refused=totals["refused"] or 0, minutes=minutes)


def message_refusals(minutes: int | None = None, now: datetime | None = None) -> RefusalRate:
    """Digests tried and refused as messages over the last `minutes` (MESSAGE_REFUSAL_WINDOW_MINUTES)."""
    minutes = settings.MESSAGE_REFUSAL_WINDOW_MINUTES if minutes is None else minutes
    return refusals_since((now or timezone.now()) - timedelta(minutes=minutes), minutes)


def sending_paused(now: datetime) -> bool:
    """Most digests tried over the last MESSAGE_REFUSAL_PAUSE_SECONDS were refused as messages."""
    seconds = settings.MESSAGE_REFUSAL_PAUSE_SECONDS
    recent = refusals_since(now - timedelta(seconds=seconds), round(seconds / 60))
    return most_refused(recent.tried, recent.refused)


def pause_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.MESSAGE_REFUSAL_PAUSE_SECONDS)


def note_message_refusal(delivery_id: int | None, reason: str, *, source: str) -> None:
    """Log one refused message (`source`: "smtp" for the server we send to, "dsn" or "webhook")."""
    log_event(
        log, "mail.message_refused", level=logging.WARNING, delivery_id=delivery_id, source=source, reason=reason[:300]
    )
