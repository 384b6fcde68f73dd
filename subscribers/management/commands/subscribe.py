from django.core.management.base import BaseCommand, CommandError

from config.celery import tasks_in_process
from subscribers import services
from subscribers.arxiv_categories import is_category
from subscribers.forms import TIMEZONES
from subscribers.models import Subscriber, Topic

OUTCOMES: dict[services.SignupOutcome | None, str] = {
    services.SignupOutcome.CONFIRMATION_SENT: " (confirmation email sent)",
    services.SignupOutcome.THROTTLED: (
        " (no confirmation email sent: one went out within the hour, and its link still works)"
    ),
}


class Command(BaseCommand):
    help = "Create or update a subscriber (for operators, demos and tests)."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--topic", action="append", default=[], metavar="SLUG", help="repeatable")
        parser.add_argument("--keywords", default="", help="e.g. '\"neural field\", NeRF, -medical'")
        parser.add_argument("--interest", default="", help="free-text description of interests")
        parser.add_argument("--category", action="append", default=[], metavar="CAT", help="arXiv code, repeatable")
        parser.add_argument("--author", action="append", default=[], metavar="NAME", help="repeatable")
        parser.add_argument("--frequency", choices=Subscriber.Frequency.values, default=Subscriber.Frequency.DAILY)
        parser.add_argument("--max-papers", type=int, default=10)
        parser.add_argument("--timezone", default="UTC")
        parser.add_argument("--hour", type=int, default=8, help="local delivery hour, 0-23")
        parser.add_argument("--confirmed", action="store_true", help="active at once, no opt-in email")

    def handle(self, *args, **options):
        topics = list(Topic.objects.filter(slug__in=options["topic"]))
        unknown = sorted(set(options["topic"]) - {topic.slug for topic in topics})
        if unknown:
            raise CommandError(f"unknown topic(s): {', '.join(unknown)}")
        bad = [code for code in options["category"] if not is_category(code)]
        if bad:
            raise CommandError(f"not arXiv categories: {', '.join(bad)}")
        if not 1 <= options["max_papers"] <= 50:
            raise CommandError("--max-papers must be between 1 and 50")
        if options["timezone"] not in TIMEZONES:
            raise CommandError(f"unknown time zone {options['timezone']!r} (use an IANA name like Europe/Paris)")
        if not 0 <= options["hour"] <= 23:
            raise CommandError("--hour must be between 0 and 23")
        prefs = services.Preferences(
            topics=topics,
            keywords=options["keywords"],
            interests=options["interest"],
            categories=options["category"],
            authors=options["author"],
            frequency=options["frequency"],
            max_papers=options["max_papers"],
            timezone=options["timezone"],
            delivery_hour=options["hour"],
        )
        try:
            # The opt-in email, or the match against the last days' papers, is done before we return.
            with tasks_in_process():
                subscriber, outcome = services.subscribe_by_operator(
                    options["email"], prefs, confirmed=options["confirmed"]
                )
        except services.InvalidEmail as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"{subscriber.email}: {subscriber.status}{OUTCOMES.get(outcome, '')}")
