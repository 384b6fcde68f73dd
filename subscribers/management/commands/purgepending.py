from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from subscribers import services


class Command(BaseCommand):
    help = "Delete pending subscribers who never confirmed (older than PENDING_PURGE_DAYS)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="override PENDING_PURGE_DAYS")

    def handle(self, *args, **options):
        days = options["days"] if options["days"] is not None else settings.PENDING_PURGE_DAYS
        deleted = services.purge_pending(timedelta(days=days))
        self.stdout.write(f"deleted {deleted} pending subscriber(s) older than {days} days")
