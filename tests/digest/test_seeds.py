import json
import re
import subprocess
import sys

import pytest
from django.core.management import call_command

from digest.models import Feed, Paper
from digest.papers.feed_parsing import parse_document
from subscribers.models import Topic
from tests.support import ROOT

SEEDS = ROOT / "seeds"

pytestmark = pytest.mark.django_db


def included_keywords(keywords: str) -> list[str]:
    terms = [t.strip() for t in re.findall(r'-?"[^"]+"|[^,]+', keywords)]
    return [t.strip('"').lower() for t in terms if t and not t.startswith("-")]


def test_the_committed_seed_feed_is_what_the_script_builds(tmp_path):
    output = tmp_path / "feed.xml"
    subprocess.run(
        [sys.executable, str(SEEDS / "build_seed_feed.py"), str(SEEDS / "trending-papers-page.txt"), str(output)],
        check=True,
        capture_output=True,
    )
    assert output.read_bytes() == (SEEDS / "trending-papers.xml").read_bytes()


def test_the_seed_feed_holds_the_62_papers_of_the_page_with_stable_guids():
    parsed = parse_document((SEEDS / "trending-papers.xml").read_bytes())
    assert (len(parsed.papers), parsed.skipped, parsed.error) == (62, 0, "")
    titles = [p.title for p in parsed.papers]
    assert titles[0].startswith("DDMI: Domain-Agnostic Latent Diffusion Models")
    assert titles[-1] == "Combiner: Full Attention Transformer with Sparse Computation Cost"
    assert "Mar 17" not in titles and "Subscribe" not in titles
    assert len({p.guid for p in parsed.papers}) == 62
    assert all(p.guid.startswith("urn:paperboy:seed:") and len(p.abstract) > 200 for p in parsed.papers)


def test_loadseeds_loads_topics_and_papers_and_twice_changes_nothing(capsys):
    call_command("loadseeds")
    assert Topic.objects.count() == 9
    assert Paper.objects.count() == 62
    feed = Feed.objects.get()
    assert (feed.enabled, feed.last_new, feed.last_error) == (False, 62, "")
    snapshot = list(Paper.objects.order_by("id").values()), list(Topic.objects.order_by("id").values())

    call_command("loadseeds")
    out, _ = capsys.readouterr()
    assert "Topics: 0 created, 0 updated" in out
    assert "new=0 updated=0 unchanged=62" in out
    assert (list(Paper.objects.order_by("id").values()), list(Topic.objects.order_by("id").values())) == snapshot


def test_every_topic_is_described_and_every_seed_paper_is_covered_by_a_topic():
    topics = json.loads((SEEDS / "topics.json").read_text())
    assert len({t["slug"] for t in topics}) == len(topics) >= 8
    assert all(len(t["description"]) > 150 and t["name"] and t["keywords"] for t in topics)
    keywords = [k for t in topics for k in included_keywords(t["keywords"])]
    parsed = parse_document((SEEDS / "trending-papers.xml").read_bytes())
    uncovered = [
        p.title
        for p in parsed.papers
        if not any(re.search(rf"\b{re.escape(k)}\b", f"{p.title} {p.abstract}".lower()) for k in keywords)
    ]
    assert uncovered == [], uncovered
