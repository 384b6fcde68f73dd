import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from digest.models import Feed
from digest.papers.ingestion import ingest_feed
from subscribers.models import Topic

SEEDS = Path(settings.BASE_DIR) / "seeds"
SEED_FEED = "seeds/trending-papers.xml"


def load_topics(path: Path = SEEDS / "topics.json") -> tuple[int, int]:
    """Create or update the starter topics by slug; returns (created, updated)."""
    created = updated = 0
    for position, item in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        values = {
            "name": item["name"],
            "description": item["description"],
            "keywords": item.get("keywords", ""),
            "position": position,
        }
        topic = Topic.objects.filter(slug=item["slug"]).first()
        if topic is None:
            Topic.objects.create(slug=item["slug"], **values)
            created += 1
        elif any(getattr(topic, name) != value for name, value in values.items()):
            Topic.objects.filter(pk=topic.pk).update(**values)
            updated += 1
    return created, updated


class Command(BaseCommand):
    help = "Loads the starter topics and the seed papers (through the normal ingestion path)."

    def handle(self, *args, **options):
        created, updated = load_topics()
        self.stdout.write(f"Topics: {created} created, {updated} updated")
        # Disabled: the seed feed is read here, not polled on the schedule.
        feed, _ = Feed.objects.get_or_create(
            url=SEED_FEED, defaults={"enabled": False, "name": "Seed papers (offline demo)", "kind": Feed.Kind.RSS}
        )
        report = ingest_feed(feed)
        self.stdout.write(f"Seed papers: {report.summary()}")
        if report.failed:
            raise CommandError(f"could not load the seed papers: {report.error}")
