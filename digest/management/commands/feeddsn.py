"""Feed a bounce (a delivery status notification, RFC 3464) read from standard input.

    python manage.py feeddsn < bounce.eml

Pipe it from the bounce mailbox, e.g. a Postfix alias `bounces: "|/app/manage.py feeddsn"` or a
fetchmail/procmail rule, one message per run.
"""

import sys

from django.core.management.base import BaseCommand, CommandError

from digest.bounces import record_dsn


class Command(BaseCommand):
    help = "Record the bounces reported by one delivery status notification read from stdin."

    def handle(self, *args, **options):
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            raise CommandError("expected a delivery status notification on standard input")
        outcomes = record_dsn(raw)
        if not outcomes:
            self.stdout.write("No bounced recipients in this message (not a DSN, or a success notice).")
        for recipient, subscriber in outcomes:
            kind = "permanent" if recipient.permanent else "transient"
            who = f"subscriber {subscriber.pk}, now {subscriber.status}" if subscriber else "unknown address"
            self.stdout.write(f"{recipient.email}: {kind} bounce ({recipient.status or recipient.action}), {who}")
