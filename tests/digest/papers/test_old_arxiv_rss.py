"""arXiv's RSS 1.0 feeds of before 2024: the title's "(arXiv:1805.08875v1 [hep-ex])" becomes the
id, the version and the category, and the title reads as the paper's own. The fixture was written
by hand in that format (tests/fixtures/arxiv_rss1.0_hep-ex_old_format.xml)."""

from datetime import UTC, datetime

import pytest

from digest.models import Feed, Paper
from digest.papers.feed_parsing import parse_document
from digest.papers.ingestion import ingest_feed

OLD_FORMAT = "arxiv_rss1.0_hep-ex_old_format.xml"


@pytest.fixture
def parsed(fixture_path):
    return parse_document(fixture_path(OLD_FORMAT).read_bytes())


def test_the_old_format_is_read_as_arxivs_own_feed(parsed):
    assert (parsed.kind, parsed.error, parsed.problems, parsed.skipped) == (Feed.Kind.ARXIV_RSS, "", [], 0)
    assert parsed.title == "hep-ex updates on arXiv.org"


def test_the_title_suffix_becomes_the_id_version_category_and_announcement(parsed):
    read = [(p.arxiv_id, p.version, p.categories, p.primary_category, p.announce_type, p.title) for p in parsed.papers]
    assert read == [
        ("1805.08875", 1, ["hep-ex"], "hep-ex", "new", "A made-up search for a heavy resonance in a test fixture"),
        (
            "1805.08402",
            2,
            ["physics.ins-det"],
            "physics.ins-det",
            "cross",
            "An invented detector calibration, cross-listed from another archive",
        ),
        ("1711.04721", 3, ["hep-ex"], "hep-ex", "replace", "A replaced version of a fictitious measurement"),
        ("hep-ex/0307015", 1, ["hep-ex"], "hep-ex", "new", "An old-style identifier, as papers before 2007 have"),
    ]
    assert not any("arXiv:" in paper.title for paper in parsed.papers)


def test_links_authors_and_the_channels_date_are_kept(parsed):
    first = parsed.papers[0]
    assert (first.url, first.pdf_url) == ("https://arxiv.org/abs/1805.08875", "https://arxiv.org/pdf/1805.08875v1")
    assert first.authors == ["Ada Example", "Bo Sample"]
    assert first.abstract.startswith("We describe a search that exists only in this test fixture.")
    # Items carry no date of their own: the channel's dc:date (2018-05-23T20:30-05:00) dates them.
    assert {paper.published for paper in parsed.papers} == {datetime(2018, 5, 24, 1, 30, tzinfo=UTC)}


@pytest.mark.django_db
def test_an_old_format_capture_is_stored_with_its_categories(fixture_path):
    feed = Feed.objects.create(url=str(fixture_path(OLD_FORMAT)), kind=Feed.Kind.ARXIV_RSS)
    report = ingest_feed(feed)
    assert (report.failed, report.counts.new) == (False, 4)
    paper = Paper.objects.get(arxiv_id="1805.08402")
    assert (paper.title, paper.version, paper.categories, paper.primary_category) == (
        "An invented detector calibration, cross-listed from another archive",
        2,
        ["physics.ins-det"],
        "physics.ins-det",
    )


def test_a_suffix_naming_another_paper_than_the_link_is_left_in_the_title(fixture_path):
    body = fixture_path(OLD_FORMAT).read_bytes().replace(b"(arXiv:1805.08875v1", b"(arXiv:1805.09999v1")
    first = parse_document(body).papers[0]
    assert (first.arxiv_id, first.version) == ("1805.08875", None)
    assert first.title.endswith("(arXiv:1805.09999v1 [hep-ex])")


def test_an_rss_1_0_feed_that_is_not_arxivs_is_read_as_any_feed(fixture_path):
    body = fixture_path(OLD_FORMAT).read_bytes().replace(b" (arXiv:", b" (preprint:")
    parsed = parse_document(body)
    assert parsed.kind == Feed.Kind.RSS
    assert parsed.papers[0].title.endswith("(preprint:1805.08875v1 [hep-ex])")
