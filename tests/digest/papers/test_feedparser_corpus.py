"""feedparser's own test corpus (over 2,000 well- and ill-formed feeds) through parsing and storing.

The corpus is in ../shared (see tests/support/shared.py): the test skips when it is absent, or fails in CI.
"""

import re
import time
from pathlib import Path

import pytest

from digest.models import Paper
from digest.papers.cleaning import clean_abstract, clean_text
from digest.papers.feed_parsing import parse_document
from digest.papers.paper_store import store_papers
from tests.support.shared import shared_folder

TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")

pytestmark = pytest.mark.django_db


def corpus_files() -> list[Path]:
    corpus = shared_folder("feedparser-corpus")
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix in {".xml", ".json"})


def test_every_corpus_file_is_ingested_without_crash_or_stored_markup():
    files = corpus_files()
    assert len(files) > 2000
    started = time.monotonic()
    kept = rejected = skipped = papers = 0
    for path in files:
        parsed = parse_document(path.read_bytes())
        if parsed.error:
            rejected += 1
            continue
        kept += 1
        skipped += parsed.skipped
        papers += len(parsed.papers)
        store_papers(parsed.papers)
    elapsed = time.monotonic() - started
    print(
        f"\nfeedparser corpus: {len(files)} files, {kept} read as feeds, {rejected} rejected, "
        f"{papers} entries kept, {skipped} entries skipped, {Paper.objects.count()} papers stored in {elapsed:.1f} s"
    )
    assert kept > rejected
    for title, abstract, authors in Paper.objects.values_list("title", "abstract", "authors"):
        for text in (title, abstract, *authors):
            assert not TAG.search(text), text
            assert "<script" not in text.lower()


def test_every_corpus_title_summary_and_content_cleans_to_plain_text():
    """Most corpus entries lack an id and are skipped above; their text still goes through cleaning."""
    import feedparser

    texts = 0
    for path in corpus_files():
        parsed = feedparser.parse(path.read_bytes(), sanitize_html=False, resolve_relative_uris=False)
        for entry in parsed.entries:
            raw = [entry.get("title", ""), entry.get("summary", "")]
            raw += [content.get("value", "") for content in entry.get("content", [])]
            for value in raw:
                if not value:
                    continue
                texts += 1
                for cleaned in (clean_text(value), clean_abstract(value)):
                    assert not TAG.search(cleaned), (path.name, value, cleaned)
                    assert "<script" not in cleaned.lower(), (path.name, value, cleaned)
    print(f"\nfeedparser corpus: {texts} entry texts cleaned")
    assert texts > 1000
