from django.core.management.base import BaseCommand

from digest.papers.poll_at_start import poll_at_start


class Command(BaseCommand):
    help = (
        "Poll every enabled feed whose host answers, now, and say what came of it in one line "
        "(`make run` does this as it starts; offline it says so and polls nothing)."
    )

    def handle(self, *args, **options):
        self.stdout.write(poll_at_start().line())
