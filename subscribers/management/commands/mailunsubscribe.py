"""Unsubscribe the sender of a List-Unsubscribe mailto reply read from standard input.

    python manage.py mailunsubscribe < reply.eml

Every email's `List-Unsubscribe` header offers `mailto:<From address>?subject=unsubscribe <token>`.
Pipe the mail that reaches that address here, e.g. a Postfix alias
`paperboy: "|/app/manage.py mailunsubscribe"`, one message per run.
"""

import sys

from django.core.management.base import BaseCommand, CommandError

from subscribers.services import unsubscribe_by_mail


class Command(BaseCommand):
    help = "Unsubscribe whoever a List-Unsubscribe mailto reply (read from stdin) names by its token."

    def handle(self, *args, **options):
        raw = sys.stdin.buffer.read()
        if not raw.strip():
            raise CommandError("expected an email on standard input")
        subscriber = unsubscribe_by_mail(raw)
        if subscriber is None:
            raise CommandError("no valid unsubscribe token in the subject; nothing changed")
        self.stdout.write(f"Unsubscribed subscriber {subscriber.pk}.")
