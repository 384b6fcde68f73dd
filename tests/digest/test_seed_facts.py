"""The seed papers carry only facts a public source establishes, and seeds/README.md says where
each came from: the page for titles, abstracts and the day, the abstracts for code and project
addresses, and no captured feed names a seed paper (so no arXiv id, author or category)."""

import html
import json
import re

import pytest
from django.core.management import call_command

from digest.models import Paper
from digest.papers.seeds import links_in_abstract
from seeds.build_seed_feed import read_papers
from tests.support import ROOT
from tests.support.shared import shared_folder

SEEDS = ROOT / "seeds"


def normalized(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", html.unescape(title).lower()).strip()


def seed_titles() -> dict[str, str]:
    papers, _ = read_papers((SEEDS / "trending-papers-page.txt").read_text(encoding="utf-8"))
    return {normalized(title): title for title, _ in papers}


def titles_in(path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json":
        return [item.get("paper", item).get("title", "") for item in json.loads(text)]
    if path.suffix == ".jsonl":
        return [json.loads(line)["title"] for line in text.splitlines() if line.strip()]
    return re.findall(r"<(?:dc:)?title[^>]*>(.*?)</(?:dc:)?title>", text, re.DOTALL)


def readme_links() -> dict[str, tuple[str, str]]:
    """The README's table of the papers whose abstracts name an address."""
    table = (SEEDS / "README.md").read_text(encoding="utf-8").split("The 12 papers whose abstracts name an address:")[1]
    rows = [line.split("|")[1:4] for line in table.splitlines() if line.startswith("| ") and "http" in line]
    return {title.strip(): (code.strip(), project.strip()) for title, code, project in rows}


def test_no_captured_feed_names_a_seed_paper():
    seeds = seed_titles()
    files = sorted(path for path in shared_folder("feeds").iterdir() if path.suffix in {".xml", ".json", ".jsonl"})
    assert len(files) >= 19
    found = [(path.name, title) for path in files for title in titles_in(path) if normalized(title) in seeds]
    assert found == [], "a capture names a seed paper: record its facts in seeds/README.md and the seed feed"


@pytest.mark.django_db
def test_the_seed_papers_carry_what_the_page_gives_and_nothing_invented():
    call_command("loadseeds", stdout=None)
    papers = list(Paper.objects.all())
    assert len(papers) == 62
    assert {(p.arxiv_id, p.url, p.pdf_url, p.upvotes) for p in papers} == {(None, "", "", 0)}
    assert all(p.authors == [] and p.categories == [] for p in papers)
    linked = {p.title: (p.code_url, p.project_url) for p in papers if p.code_url or p.project_url}
    assert linked == readme_links()
    assert len(linked) == 12


def test_an_abstracts_addresses_are_read_as_code_and_project_without_trailing_punctuation():
    abstract = "We provide project page at https://example.org/proj, and Code at https://github.com/a/b.git."
    assert links_in_abstract(abstract) == ("https://github.com/a/b.git", "https://example.org/proj")
    assert links_in_abstract("No address here.") == ("", "")
