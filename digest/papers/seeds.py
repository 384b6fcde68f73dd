"""The offline demo data in seeds/: the starter topics and the seed papers, loaded through the
normal ingestion path (`manage.py loadseeds`, and `make run` at every start)."""

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from digest.models import Feed, Paper
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


# The only facts about a seed paper beyond its title, abstract and day that the seed page gives:
# the addresses its abstract names, "Code at https://github.com/...". No other source available
# offline names a seed paper (seeds/README.md), so the seeds carry no arXiv id, author or category.
_ADDRESS = re.compile(r"https?://[^\s<>\"]+")
CODE_HOSTS = frozenset({"github.com", "gitlab.com"})


def links_in_abstract(abstract: str) -> tuple[str, str]:
    """(code address, project page) that an abstract names, the first of each; "" when none."""
    code = project = ""
    for found in _ADDRESS.findall(abstract):
        address = found.rstrip(".,;:)")
        if (urlsplit(address).hostname or "").lower() in CODE_HOSTS:
            code = code or address
        else:
            project = project or address
    return code, project


def load_seed_papers() -> IngestReport:
    feed, _ = Feed.objects.get_or_create(
        url=SEED_FEED, defaults={"enabled": False, "name": SEED_FEED_NAME, "kind": Feed.Kind.RSS}
    )
    report = ingest_feed(feed)
    for paper in Paper.objects.filter(sources__feed=feed).only("abstract", "code_url", "project_url"):
        code, project = links_in_abstract(paper.abstract)
        if (code, project) != (paper.code_url, paper.project_url):
            Paper.objects.filter(pk=paper.pk).update(code_url=code, project_url=project)
    return report
