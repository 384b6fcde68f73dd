from django.core.management.base import BaseCommand

from digest.matching.vectors import queue_paper_vectors
from digest.papers.poll_at_start import poll_at_start


class Command(BaseCommand):
    help = (
        "Poll every enabled feed whose host answers, now, and say what came of it in one line "
        "(`make run` does this as it starts; offline it says so and polls nothing)."
    )

    def handle(self, *args, **options):
        polled = poll_at_start()
        # Encoded by a worker, as the beat's ingest task has them: not by the first match of a run.
        queue_paper_vectors([paper_id for report in polled.polled for paper_id in report.counts.new_text])
        self.stdout.write(polled.line())
