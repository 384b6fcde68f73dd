import math
from datetime import datetime

from django.conf import settings
from django.core.mail import get_connection
from django.core.management.base import BaseCommand
from django.utils import timezone

from digest.chunks import chunked
from digest.delivery.claims import pick_papers
from digest.delivery.digest_email import build_digest_message
from digest.delivery.dispatch import dispatch_due, due_moment, due_subscribers
from digest.delivery.sending import ChunkResult, send_delivery_chunk
from digest.management.progress import progress
from digest.models import Delivery
from subscribers.scheduling import period_key


class Command(BaseCommand):
    help = "Dispatch the digests that are due and send them in this process, with a summary."

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="treat every active subscriber as due")
        parser.add_argument(
            "--email", nargs="+", action="extend", default=[], metavar="ADDRESS", help="only these subscribers"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="build and show the digests; send and record nothing"
        )

    def handle(self, *args, **options):
        now = timezone.now()
        if options["dry_run"]:
            self.dry_run(now, force=options["now"], emails=options["email"])
            return
        ids = dispatch_due(now, force=options["now"], emails=options["email"], queue=False)
        if not ids:
            self.stdout.write("No digests due.")
            return
        result = ChunkResult()
        connection = get_connection()
        chunks = chunked(ids, settings.DIGEST_CHUNK_SIZE)
        total = math.ceil(len(ids) / settings.DIGEST_CHUNK_SIZE)
        for chunk in progress(chunks, total, f"Sending {len(ids)} digests in chunks", self.stderr):
            result += send_delivery_chunk(chunk, connection)
        self.stdout.write(
            f"Sent {result.sent}, skipped as empty {result.empty}, failed {result.failed} "
            f"(to retry later {result.retrying}, no longer subscribed {result.inactive})."
        )
        if result.refused or result.paused:
            self.stdout.write(
                f"Refused as messages by the mail server {result.refused} (not counted as bounces); "
                f"put back while sending is paused {result.paused}."
            )

    def dry_run(self, now: datetime, *, force: bool, emails: list[str]) -> None:
        subscribers = due_subscribers(now, force=force, emails=emails).prefetch_related("topics")
        would_send = empty = already = 0
        lines = []
        rows = subscribers.iterator(chunk_size=500)
        for subscriber in progress(rows, subscribers.count(), "Building digests", self.stderr):
            period = period_key(subscriber, due_moment(subscriber, now))
            if Delivery.objects.filter(subscriber=subscriber, period=period).exists():
                already += 1
                continue
            candidates, more = pick_papers(subscriber)
            if not candidates and not settings.SEND_EMPTY_DIGESTS:
                empty += 1
                lines.append(f"{subscriber.email}  {period}  nothing new: skipped")
                continue
            message = build_digest_message(subscriber, candidates, more)
            would_send += 1
            lines.append(f"{subscriber.email}  {period}  {len(candidates)} papers (+{more} more)  {message.subject}")
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(
            f"Dry run: would send {would_send}, skip as empty {empty}, already sent this period {already}. "
            "Nothing was sent or recorded."
        )
