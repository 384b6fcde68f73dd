"""Bounce and complaint intake: delivery status notifications and provider webhooks (anymail).

Two ways in, one set of rules:

- a bounce that comes back to a digest's return path as a DSN (RFC 3464, `multipart/report;
  report-type=delivery-status`) is fed to `python manage.py feeddsn < message.eml`;
- a hosted provider posts its events to anymail's webhook URLs (`/anymail/<provider>/tracking/`);
  anymail turns them into `tracking` signals, handled by `on_tracking_event` below.

Anyone can write a DSN naming any address, so a DSN counts only when it proves which digest it
answers:

1. by the return-path token (mail/return_path.py) of the address it was delivered to: the
   envelope recipient (`feeddsn --recipient`), or the `X-Original-To`, `Delivered-To` or `To`
   header. The token names the Delivery, whatever address the report names;
2. else by the Message-ID of the returned message, that of a digest sent to the address the report
   names (Final-Recipient or Original-Recipient).

Anything else is logged (`bounce.unproven`) and changes nothing. A digest answers for one bounce:
the first report moves it from `sent` (a compare-and-set), and the same report fed again finds it
moved and changes nothing.

What a proven report does follows its status (mail/refusals.py): a refused address marks the
digest `bounced` and counts towards BOUNCE_LIMIT (at the limit the subscriber is marked bounced);
a refused message or a full mailbox marks it `failed` with the reason and counts nothing (a
refused message raises the alarm of digest/delivery/refusal_alarm.py); a delay changes nothing, the mail
server retries it.

Webhook posts are authenticated by anymail's WEBHOOK_SECRET, so they count by address; an event
that carries our Message-ID is tied to its digest (and so counts once). A spam complaint
unsubscribes at once.
"""

import logging
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses, parseaddr

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason, tracking
from django.dispatch import receiver

from config.logging import log_event
from digest.delivery.refusal_alarm import note_message_refusal, tally
from digest.models import Delivery
from mail.refusals import ENHANCED_STATUS, Phase, Refusal, classify, diagnostic_phase
from mail.return_path import delivery_id_from
from subscribers.models import Subscriber
from subscribers.services import find_by_email, record_bounce, unsubscribe

log = logging.getLogger(__name__)

PERMANENT_EVENTS = {EventType.BOUNCED, EventType.REJECTED}
TRANSIENT_EVENTS = {EventType.DEFERRED}
UNSUBSCRIBE_EVENTS = {EventType.COMPLAINED, EventType.UNSUBSCRIBED}
# The headers a bounce mailbox's server writes the address a message was delivered to in.
DELIVERED_TO_HEADERS = ("X-Original-To", "Delivered-To", "To")


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block of a delivery status notification."""

    email: str
    action: str
    status: str
    diagnostic: str = ""
    original: str = ""  # Original-Recipient, when given

    @property
    def is_bounce(self) -> bool:
        # "delivered", "relayed" and "expanded" reports are success notices, not bounces.
        return self.action in {"failed", "delayed"}

    def refusal(self, report_text: str = "") -> Refusal:
        """What this block reports (mail/refusals.py); the command refused is read from its
        diagnostic, else from the report's words for people."""
        if self.action != "failed":
            return Refusal.TRANSIENT
        return classify(self.status or "5", diagnostic_phase(self.diagnostic, report_text))


@dataclass(frozen=True)
class Dsn:
    recipients: list[DsnRecipient]
    original_message_id: str = ""
    delivered_to: tuple[str, ...] = ()  # the addresses this report was delivered to
    text: str = ""  # the part for people


@dataclass(frozen=True)
class DsnOutcome:
    """What one reported recipient did: the digest it proved to answer (None: unproven, ignored),
    and whether it changed that digest (False for a delay or a report fed again)."""

    recipient: DsnRecipient
    refusal: Refusal
    delivery: Delivery | None
    changed: bool


def record_bounce_by_address(email: str, permanent: bool) -> Subscriber | None:
    """Note a bounce for the subscriber with this address; returns them, or None if unknown.

    For authenticated provider events only: a DSN must prove its digest (`record_dsn`)."""
    subscriber = find_by_email(email)
    if subscriber is None:
        log.info("bounce for unknown address %s", email)
        return None
    if not permanent:
        log.info("transient bounce for subscriber %s, left to the mail server's retries", subscriber.pk)
        return subscriber
    record_bounce(subscriber.pk)
    subscriber.refresh_from_db()
    log.info("permanent bounce for subscriber %s (%s so far)", subscriber.pk, subscriber.bounce_count)
    return subscriber


def record_report(delivery: Delivery, refusal: Refusal, reason: str, *, source: str) -> bool:
    """Apply a proven report to the digest it answers; False when it changes nothing (a delay, or
    the digest already answered for a report).

    1. Move the digest from `sent` to `bounced` (a refused address) or `failed` (a refused message,
       a full mailbox), with the reason.
    2. If exactly that one row changed, count the bounce or raise the alarm. Nothing changed: the
       digest was not `sent`, or a report reached it first, so nothing is counted twice.
    """
    if refusal is Refusal.TRANSIENT:
        return False
    status = Delivery.Status.BOUNCED if refusal is Refusal.RECIPIENT else Delivery.Status.FAILED
    last_error = f"message refused: {reason}" if refusal is Refusal.MESSAGE else reason
    moved = Delivery.objects.filter(id=delivery.id, status=Delivery.Status.SENT).update(
        status=status, last_error=last_error[:2000]
    )
    if moved != 1:
        log_event(log, "bounce.repeated", delivery_id=delivery.id, source=source, refusal=refusal.value)
        return False
    if refusal is Refusal.RECIPIENT:
        record_bounce(delivery.subscriber_id)
    elif refusal is Refusal.MESSAGE:
        note_message_refusal(delivery.id, reason, source=source)
        tally(0, 1)
    log_event(
        log,
        "bounce.recorded",
        delivery_id=delivery.id,
        subscriber_id=delivery.subscriber_id,
        source=source,
        refusal=refusal.value,
    )
    return True


def record_complaint(email: str) -> Subscriber | None:
    """Someone marked a digest as spam: they get nothing more, at once."""
    subscriber = find_by_email(email)
    if subscriber is None:
        log.info("complaint for unknown address %s", email)
        return None
    if unsubscribe(subscriber):
        log.info("subscriber %s unsubscribed after a complaint", subscriber.pk)
    return subscriber


def delivery_sent_to(message_id: str, addresses: list[str]) -> Delivery | None:
    """The digest with this Message-ID, if it was sent to one of `addresses`."""
    message_id = message_id.strip()
    if not message_id:
        return None
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    for address in dict.fromkeys(a for a in addresses if a):
        subscriber = find_by_email(address)
        found = subscriber and Delivery.objects.filter(subscriber=subscriber, message_id=message_id).first()
        if found:
            return found
    return None


def delivery_named_by_return_path(addresses: list[str]) -> Delivery | None:
    """The digest whose signed return path is among `addresses`."""
    for address in addresses:
        delivery_id = delivery_id_from(address)
        if delivery_id is not None:
            return Delivery.objects.filter(id=delivery_id).first()
    return None


def webhook_refusal(event: AnymailTrackingEvent) -> Refusal:
    """A provider's permanent event as a refusal: its reject reason, refined by the SMTP answer it
    quotes only where the code itself says the message was refused, not the address."""
    if event.reject_reason in {RejectReason.SPAM, RejectReason.BLOCKED}:
        return Refusal.MESSAGE
    if event.reject_reason == RejectReason.TIMED_OUT:
        return Refusal.TRANSIENT
    found = ENHANCED_STATUS.search(event.mta_response or "")
    return classify(found.group(0), Phase.RCPT) if found else Refusal.RECIPIENT


@receiver(tracking, dispatch_uid="digest.delivery.bounces.on_tracking_event")
def on_tracking_event(sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: object) -> None:
    if not event.recipient:
        return
    if event.event_type in UNSUBSCRIBE_EVENTS:
        record_complaint(event.recipient)
        return
    if event.event_type in PERMANENT_EVENTS:
        refusal = webhook_refusal(event)
    elif event.event_type in TRANSIENT_EVENTS:
        refusal = Refusal.TRANSIENT
    else:
        return
    delivery = delivery_sent_to(event.message_id or "", [event.recipient])
    reason = f"{esp_name} {event.event_type}: {event.mta_response or event.description or event.reject_reason or ''}"
    if delivery is not None:
        record_report(delivery, refusal, reason, source="webhook")
    elif refusal is Refusal.MESSAGE:
        note_message_refusal(None, reason, source="webhook")
        tally(0, 1)
    else:
        record_bounce_by_address(event.recipient, permanent=refusal is Refusal.RECIPIENT)


def _field(block: Message, name: str) -> str:
    return " ".join(str(block.get(name, "")).split())


def _recipient_blocks(part: Message) -> list[Message]:
    blocks = part.get_payload()
    return [block for block in blocks[1:] if isinstance(block, Message)] if isinstance(blocks, list) else []


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _typed_address(value: str) -> str:
    """'rfc822; ada@example.org' -> 'ada@example.org'."""
    _, _, address = value.rpartition(";")
    return parseaddr(address.strip())[1] or address.strip()


def parse_dsn(raw: bytes) -> Dsn:
    """The recipients a DSN reports on, the Message-ID of the message it returns, and the addresses
    the report itself was delivered to."""
    message = message_from_bytes(raw, policy=policy.compat32)
    recipients: list[DsnRecipient] = []
    original_message_id, text = "", ""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            # The first block holds per-message fields, each later one describes a recipient.
            for block in _recipient_blocks(part):
                final, original = _field(block, "Final-Recipient"), _field(block, "Original-Recipient")
                if not (final or original):
                    continue
                recipients.append(
                    DsnRecipient(
                        email=_typed_address(final or original),
                        action=_field(block, "Action").lower(),
                        status=_field(block, "Status"),
                        diagnostic=_field(block, "Diagnostic-Code"),
                        original=_typed_address(original) if original else "",
                    )
                )
        elif content_type in {"text/rfc822-headers", "message/rfc822"} and not original_message_id:
            returned = (
                part.get_payload(0)
                if part.is_multipart()
                else message_from_bytes(_payload_bytes(part), policy=policy.compat32)
            )
            original_message_id = _field(returned, "Message-ID") if isinstance(returned, Message) else ""
        elif content_type == "text/plain" and not text and not part.get_filename():
            text = _payload_bytes(part).decode("utf-8", "replace")
    headers = [value for name in DELIVERED_TO_HEADERS for value in message.get_all(name, [])]
    delivered_to = tuple(address for _, address in getaddresses([str(value) for value in headers]) if address)
    return Dsn(recipients, original_message_id, delivered_to, " ".join(text.split()))


def record_dsn(raw: bytes, envelope_recipient: str = "") -> list[DsnOutcome]:
    """Apply a DSN that proves which digest it answers; an unproven one is logged and ignored.

    `envelope_recipient`, when the mail server hands it over, is the address the DSN came to.
    """
    dsn = parse_dsn(raw)
    proven = delivery_named_by_return_path([envelope_recipient, *dsn.delivered_to])
    outcomes = []
    for recipient in dsn.recipients:
        if not recipient.is_bounce:
            continue
        refusal = recipient.refusal(dsn.text)
        delivery = proven or delivery_sent_to(dsn.original_message_id, [recipient.email, recipient.original])
        if delivery is None:
            log_event(
                log,
                "bounce.unproven",
                level=logging.WARNING,
                action=recipient.action,
                status=recipient.status,
                domain=recipient.email.rpartition("@")[2],
                message_id=dsn.original_message_id[:200],
            )
            outcomes.append(DsnOutcome(recipient, refusal, None, False))
            continue
        reason = f"DSN {recipient.status or recipient.action}: {recipient.diagnostic}".strip()
        outcomes.append(
            DsnOutcome(recipient, refusal, delivery, record_report(delivery, refusal, reason, source="dsn"))
        )
    return outcomes
