from django.core.management.base import BaseCommand, CommandError

from digest.papers.seeds import load_seed_papers, load_topics


class Command(BaseCommand):
    help = "Loads the starter topics and the seed papers (through the normal ingestion path)."

    def handle(self, *args, **options):
        created, updated = load_topics()
        self.stdout.write(f"Topics: {created} created, {updated} updated")
        report = load_seed_papers()
        self.stdout.write(f"Seed papers: {report.summary()}")
        if report.failed:
            raise CommandError(f"could not load the seed papers: {report.error}")
