"""The offline demo data in seeds/: the starter topics and the seed papers, loaded through the
normal ingestion path (`manage.py loadseeds`, and `make run` at every start)."""

import json
from pathlib import Path

from django.conf import settings

from digest.models import Feed
from digest.papers.ingestion import IngestReport, ingest_feed
from subscribers.models import Topic

SEEDS = Path(settings.BASE_DIR) / "seeds"
# The seed papers' Feed row: read by loadseeds, never polled (disabled), and how the dashboard
# tells seed papers from those of polled feeds and of ingested files.
SEED_FEED = "seeds/trending-papers.xml"
SEED_FEED_NAME = "Seed papers (offline demo)"


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


def load_seed_papers() -> IngestReport:
    feed, _ = Feed.objects.get_or_create(
        url=SEED_FEED, defaults={"enabled": False, "name": SEED_FEED_NAME, "kind": Feed.Kind.RSS}
    )
    return ingest_feed(feed)
