"""Bounce and complaint intake: provider webhooks (anymail) and delivery status notifications.

Two ways in, one set of rules:

- a hosted provider posts its events to anymail's webhook URLs (`/anymail/<provider>/tracking/`);
  anymail turns them into `tracking` signals, handled by `on_tracking_event` below;
- a bounce that comes back to our own mailbox as a DSN (RFC 3464, `multipart/report;
  report-type=delivery-status`) is fed to `python manage.py feeddsn < message.eml`.

The rules: a permanent bounce counts towards `BOUNCE_LIMIT` (the same count the sender keeps for
5xx refusals; at the limit the subscriber is marked bounced) and marks the digest it answers
bounced; a transient one (4.x.x, "delayed") changes nothing, the mail server retries it; a spam
complaint unsubscribes at once.
"""

import logging
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.utils import parseaddr

from anymail.signals import EventType, tracking
from django.dispatch import receiver

from digest.models import Delivery
from digest.sending import record_bounce as count_bounce
from subscribers.models import Subscriber
from subscribers.services import find_by_email, unsubscribe

log = logging.getLogger(__name__)

PERMANENT_EVENTS = {EventType.BOUNCED, EventType.REJECTED}
TRANSIENT_EVENTS = {EventType.DEFERRED}
UNSUBSCRIBE_EVENTS = {EventType.COMPLAINED, EventType.UNSUBSCRIBED}


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block of a delivery status notification."""

    email: str
    action: str
    status: str
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        return self.action == "failed" or self.status.startswith("5.")

    @property
    def is_bounce(self) -> bool:
        # "delivered", "relayed" and "expanded" reports are success notices, not bounces.
        return self.action in {"failed", "delayed"}


@dataclass(frozen=True)
class Dsn:
    recipients: list[DsnRecipient]
    original_message_id: str = ""


def record_bounce(email: str, permanent: bool, *, message_id: str = "") -> Subscriber | None:
    """Note a bounce for the subscriber with this address; returns them, or None if unknown."""
    subscriber = find_by_email(email)
    if subscriber is None:
        log.info("bounce for unknown address %s", email)
        return None
    if not permanent:
        log.info("transient bounce for subscriber %s, left to the mail server's retries", subscriber.pk)
        return subscriber
    if message_id:
        Delivery.objects.filter(subscriber=subscriber, message_id=message_id).exclude(
            status=Delivery.Status.BOUNCED
        ).update(status=Delivery.Status.BOUNCED)
    count_bounce(subscriber.pk)
    subscriber.refresh_from_db()
    log.info("permanent bounce for subscriber %s (%s so far)", subscriber.pk, subscriber.bounce_count)
    return subscriber


def record_complaint(email: str) -> Subscriber | None:
    """Someone marked a digest as spam: they get nothing more, at once."""
    subscriber = find_by_email(email)
    if subscriber is None:
        log.info("complaint for unknown address %s", email)
        return None
    if unsubscribe(subscriber):
        log.info("subscriber %s unsubscribed after a complaint", subscriber.pk)
    return subscriber


@receiver(tracking, dispatch_uid="digest.bounces.on_tracking_event")
def on_tracking_event(sender, event, esp_name: str, **kwargs) -> None:
    if not event.recipient:
        return
    if event.event_type in UNSUBSCRIBE_EVENTS:
        record_complaint(event.recipient)
    elif event.event_type in PERMANENT_EVENTS:
        record_bounce(event.recipient, permanent=True)
    elif event.event_type in TRANSIENT_EVENTS:
        record_bounce(event.recipient, permanent=False)


def _field(block: Message, name: str) -> str:
    return " ".join(str(block.get(name, "")).split())


def _typed_address(value: str) -> str:
    """'rfc822; ada@example.org' -> 'ada@example.org'."""
    _, _, address = value.rpartition(";")
    return parseaddr(address.strip())[1] or address.strip()


def parse_dsn(raw: bytes) -> Dsn:
    """The recipients a DSN reports on, and the Message-ID of the message it returns."""
    message = message_from_bytes(raw, policy=policy.compat32)
    recipients: list[DsnRecipient] = []
    original_message_id = ""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            # The first block holds per-message fields, each later one describes a recipient.
            for block in part.get_payload()[1:]:
                address = _field(block, "Final-Recipient") or _field(block, "Original-Recipient")
                if not address:
                    continue
                recipients.append(
                    DsnRecipient(
                        email=_typed_address(address),
                        action=_field(block, "Action").lower(),
                        status=_field(block, "Status"),
                        diagnostic=_field(block, "Diagnostic-Code"),
                    )
                )
        elif content_type in {"text/rfc822-headers", "message/rfc822"} and not original_message_id:
            returned = part.get_payload(0) if part.is_multipart() else message_from_bytes(
                part.get_payload(decode=True) or b"", policy=policy.compat32
            )
            original_message_id = _field(returned, "Message-ID")
    return Dsn(recipients=recipients, original_message_id=original_message_id)


def record_dsn(raw: bytes) -> list[tuple[DsnRecipient, Subscriber | None]]:
    """Apply a DSN: each bounced recipient is recorded as a permanent or transient bounce."""
    dsn = parse_dsn(raw)
    return [
        (recipient, record_bounce(recipient.email, recipient.permanent, message_id=dsn.original_message_id))
        for recipient in dsn.recipients
        if recipient.is_bounce
    ]
