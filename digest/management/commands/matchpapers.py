from django.core.management.base import BaseCommand

from digest.management.progress import progress
from digest.matching.runs import match_chunk, run_under_way, start_match_run
from digest.models import MatchRun


class Command(BaseCommand):
    help = (
        "Match the papers that arrived since the last run (or all papers) against every active subscriber, in-process."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="match every stored paper, not only new ones")
        parser.add_argument(
            "--chunk-size", type=int, default=None, help="subscribers per chunk (default MATCH_CHUNK_SIZE)"
        )

    def handle(self, *args, **options):
        plan = start_match_run(all_papers=options["all"], chunk_size=options["chunk_size"])
        if plan is None:
            under_way = run_under_way()
            if under_way is not None:
                self.stdout.write(f"Match run {under_way.id} is under way: its papers are not matched twice.")
            else:
                self.stdout.write("No new papers since the last run.")
            return
        created = 0
        for chunk in progress(plan.chunks, len(plan.chunks), "Subscriber chunks"):
            created += match_chunk(plan.run_id, chunk)
        run = MatchRun.objects.get(id=plan.run_id)
        self.stdout.write(
            f"Run {run.id}: {run.papers} papers (ids {run.first_paper_id + 1}-{run.last_paper_id}), "
            f"{run.subscribers} active subscribers, {created} new candidates."
        )
