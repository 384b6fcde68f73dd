"""Feed a bounce (a delivery status notification, RFC 3464) read from standard input.

    python manage.py feeddsn [--recipient ADDRESS] < bounce.eml

Pipe it from the bounce mailbox (BOUNCE_ADDRESS and its `+token` variants), e.g. a Postfix alias
`bounces: "|/app/manage.py feeddsn"` (local delivery writes the X-Original-To and Delivered-To
headers the return-path token is read from), or a pipe(8) transport passing
`--recipient ${original_recipient}`; one message per run. A report that does not prove which
digest it answers (digest/delivery/bounces.py) changes nothing.
"""

import sys

from django.core.management.base import BaseCommand, CommandError

from digest.delivery.bounces import record_dsn
from mail.refusals import Refusal

SAID = {
    Refusal.RECIPIENT: "address refused",
    Refusal.MESSAGE: "message refused, not counted",
    Refusal.MAILBOX_FULL: "mailbox full, not counted",
    Refusal.TRANSIENT: "transient",
}


class Command(BaseCommand):
    help = "Record the bounces reported by one delivery status notification read from stdin."

    def add_arguments(self, parser):
        parser.add_argument("--recipient", default="", help="the envelope recipient the bounce was delivered to")

    def handle(self, *args, **options):
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            raise CommandError("expected a delivery status notification on standard input")
        outcomes = record_dsn(raw, options["recipient"])
        if not outcomes:
            self.stdout.write("No bounced recipients in this message (not a DSN, or a success notice).")
        for outcome in outcomes:
            recipient, delivery = outcome.recipient, outcome.delivery
            said = f"{recipient.email}: {SAID[outcome.refusal]} ({recipient.status or recipient.action})"
            if delivery is None:
                self.stdout.write(f"{said}, ignored: it names no digest we sent to this address")
            elif not outcome.changed:
                self.stdout.write(f"{said}, digest {delivery.pk}: nothing changed")
            else:
                delivery.refresh_from_db()
                subscriber = delivery.subscriber
                self.stdout.write(
                    f"{said}, digest {delivery.pk} now {delivery.status}, "
                    f"subscriber {subscriber.pk} now {subscriber.status}"
                )
