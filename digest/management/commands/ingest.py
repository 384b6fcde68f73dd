from django.core.management.base import BaseCommand, CommandError

from digest.management.progress import progress
from digest.models import Feed
from digest.papers.ingestion import IngestReport, ingest_feed, ingest_source, sync_feeds_from_settings


class Command(BaseCommand):
    help = "Ingest papers from each SOURCE (URL or local file), or from every enabled feed."

    def add_arguments(self, parser):
        parser.add_argument("sources", nargs="*", metavar="SOURCE")

    def handle(self, *args, sources, **options):
        if sources:
            reports = [ingest_source(source) for source in sources]
        else:
            sync_feeds_from_settings()
            feeds = list(Feed.objects.filter(enabled=True).order_by("url"))
            reports = [ingest_feed(feed) for feed in progress(feeds, len(feeds), "Feeds")]
        for report in reports:
            self._print(report)
        failed = [r.source for r in reports if r.failed]
        if failed:
            raise CommandError(f"could not read {len(failed)} of {len(reports)} sources: {', '.join(failed)}")

    def _print(self, report: IngestReport) -> None:
        line = report.summary()
        self.stdout.write(self.style.ERROR(line) if report.failed else line)
        for problem in report.problems:
            self.stderr.write(f"  {problem}")
