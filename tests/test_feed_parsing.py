import json

import pytest

from digest.feed_parsing import parse_document
from digest.models import Feed

TRUNCATED = "arxiv_rss-atom_2025-08-20_cs.AI_TRUNCATED_86entries.xml"


def parse(fixture_path, name, **kwargs):
    return parse_document(fixture_path(name).read_bytes(), **kwargs)


def test_it_reads_arxiv_rss2_items(fixture_path):
    result = parse(fixture_path, "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml")
    assert result.kind == Feed.Kind.ARXIV_RSS
    assert (len(result.papers), result.skipped, result.error) == (3, 0, "")
    paper = result.papers[0]
    assert (paper.arxiv_id, paper.version, paper.guid) == ("2604.21952", 1, "2604.21952")
    assert paper.title == (
        "Focus Session: Hardware and Software Techniques for Accelerating Multimodal Foundation Models"
    )
    assert paper.abstract.startswith("This work presents a multi-layered methodology")
    assert "Announce Type" not in paper.abstract and "&amp;" not in paper.abstract
    assert "visual resolution & stride" in paper.abstract
    assert paper.authors[:2] == ["Muhammad Shafique", "Abdul Basit"]
    assert len(paper.authors) == 6
    assert paper.categories == ["cs.LG", "cs.AI", "cs.AR", "cs.NE", "cs.RO"]
    assert paper.primary_category == "cs.LG"
    assert paper.announce_type == "new"
    assert paper.url == "https://arxiv.org/abs/2604.21952"
    assert paper.pdf_url == "https://arxiv.org/pdf/2604.21952v1"
    assert paper.published.isoformat() == "2026-04-27T04:00:00+00:00"


def test_it_reads_the_other_arxiv_rss2_capture(fixture_path):
    result = parse(fixture_path, "arxiv_rss2_2026-04-27_cs.AI_trimmed_3items.xml")
    assert [p.arxiv_id for p in result.papers] == ["2604.21935", *[p.arxiv_id for p in result.papers[1:]]]
    assert all(p.title and p.abstract and p.authors for p in result.papers)
    assert all(not p.abstract.startswith("arXiv:") for p in result.papers)


def test_it_reads_an_empty_weekend_feed_as_no_papers_and_no_error(fixture_path):
    result = parse(fixture_path, "arxiv_rss2_2026-08-01_cs.CL_weekend_empty_0items.xml")
    assert (result.papers, result.skipped, result.problems, result.error) == ([], 0, [], "")
    assert result.title == "cs.CL updates on arXiv.org"


def test_it_keeps_the_complete_entries_of_the_truncated_feed(fixture_path):
    result = parse(fixture_path, TRUNCATED)
    assert result.kind == Feed.Kind.ARXIV_RSS
    assert len(result.papers) == 86
    assert result.skipped == 1
    assert result.error == ""
    assert any("malformed document" in p for p in result.problems)
    assert any("truncated" in p for p in result.problems)
    assert all(p.abstract and p.authors and p.categories for p in result.papers)
    first = result.papers[0]
    assert first.arxiv_id == "2508.13167"
    assert first.authors[0] == "Weizhen Li" and first.authors[-1] == "Wangchunshu Zhou"
    assert len(first.authors) == 30


def test_it_reads_every_announce_type_of_the_atom_feed(fixture_path):
    result = parse(fixture_path, TRUNCATED)
    types = {p.announce_type for p in result.papers}
    assert {"new", "cross"} <= types
    assert types <= {"new", "cross", "replace", "replace-cross"}
    cross = next(p for p in result.papers if p.announce_type == "cross")
    assert cross.primary_category != "cs.AI"


def test_it_reads_arxiv_api_entries_with_all_authors_in_order(fixture_path):
    result = parse(fixture_path, "arxiv_api_atom_2026-04-30_cat-cs.LG-OR-cs.AI_max20_20entries.xml")
    assert result.kind == Feed.Kind.ARXIV_API
    assert len(result.papers) == 20
    paper = result.papers[0]
    assert (paper.arxiv_id, paper.version) == ("2604.26951", 1)
    # feedparser's entry.author is the last author; the first must come first.
    assert paper.authors == ["Gongbo Zhang", "Wen Wang", "Ye Tian", "Li Yuan"]
    assert paper.primary_category == "cs.CL"
    assert paper.categories == ["cs.CL", "cs.AI", "cs.LG"]
    assert paper.comment == "15 pages, 3 figures. Code: https://github.com/PKU-YuanGroup/TIDE"
    assert paper.pdf_url == "https://arxiv.org/pdf/2604.26951v1"
    assert paper.url == "https://arxiv.org/abs/2604.26951"


def test_it_reads_doi_and_journal_ref_from_the_api(fixture_path):
    result = parse(fixture_path, "arxiv_api_atom_2026-04-12_search-testing_max10_10entries.xml")
    assert len(result.papers) == 10
    paper = next(p for p in result.papers if p.arxiv_id == "2202.12139")
    assert paper.doi == "10.1109/ICSTW55395.2022.00035"
    assert paper.journal_ref.startswith("Artificial Intelligence in Software Testing")
    assert paper.authors == ["Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker"]
    assert all("\n" not in p.title and "  " not in p.title for p in result.papers)


def test_it_reads_zero_api_results_as_no_papers(fixture_path):
    result = parse(fixture_path, "arxiv_api_atom_2026-04-12_idlist-0000.0000_zero_entries.xml")
    assert (result.papers, result.error) == ([], "")


def test_it_reports_the_api_error_feed_as_an_error_not_a_paper(fixture_path):
    result = parse(fixture_path, "arxiv_api_atom_2026-04-12_idlist-abc_HTTP400_error.xml")
    assert result.papers == []
    assert result.error == "arXiv API error: incorrect id format for abc"


@pytest.mark.parametrize(
    "name, count", [("hf_daily_papers_api_2026-07-31_5papers.json", 5), ("hf_daily_papers_api_2026-08-03_3papers.json", 3)]
)
def test_it_reads_hugging_face_daily_papers(fixture_path, name, count):
    raw = json.loads(fixture_path(name).read_text())
    result = parse(fixture_path, name)
    assert result.kind == Feed.Kind.HF_DAILY
    assert len(result.papers) == count
    for item, paper in zip(raw, result.papers, strict=True):
        assert paper.arxiv_id == item["paper"]["id"]
        assert paper.upvotes == item["paper"]["upvotes"]
        assert paper.code_url == item["paper"].get("githubRepo", "") or ""
        assert paper.project_url == (item["paper"].get("projectPage") or "")
        assert paper.authors == [a["name"] for a in item["paper"]["authors"]]
        assert paper.version is None


def test_it_reads_the_hugging_face_extras(fixture_path):
    result = parse(fixture_path, "hf_daily_papers_api_2026-08-03_3papers.json")
    paper = result.papers[0]
    assert paper.code_url == "https://github.com/desBugger/constitutional-mt"
    assert paper.project_url == "https://www.lesswrong.com/posts/n5htoDGvKKJFAjji2"
    assert paper.url == "https://arxiv.org/abs/2607.26654"


def test_it_reads_a_generic_rss_feed_best_effort():
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Lab blog</title>
    <item><title>Our <em>new</em> paper</title><link>https://lab.example/p/1</link>
      <description>&lt;p&gt;We show &lt;b&gt;things&lt;/b&gt;.&lt;/p&gt;</description>
      <author>ann@lab.example (Ann Lee)</author><pubDate>Tue, 03 Mar 2026 10:00:00 GMT</pubDate>
      <category>ml</category></item>
    <item><title>Mirror of an arXiv paper</title><link>https://arxiv.org/abs/2604.21952v2</link></item>
    <item><link>https://lab.example/untitled</link></item>
    <item><title>No identity at all</title></item>
    </channel></rss>"""
    result = parse_document(body)
    assert result.kind == Feed.Kind.RSS
    assert result.skipped == 2
    assert "skipped 2 entries without an id or a title" in result.problems
    first, mirror = result.papers
    assert (first.guid, first.title, first.abstract) == ("https://lab.example/p/1", "Our new paper", "We show things.")
    assert first.categories == ["ml"]
    assert first.published.isoformat() == "2026-03-03T10:00:00+00:00"
    assert (mirror.arxiv_id, mirror.version, mirror.guid) == ("2604.21952", 2, "2604.21952")


def test_it_reports_an_html_page_as_not_a_feed():
    result = parse_document(b"<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>", content_type="text/html")
    assert result.papers == []
    assert result.error == "not a feed: got an HTML page"


@pytest.mark.parametrize("body", [b"", b"   ", b"just some words", b"{not json", b'{"hello": 1}', b"[1, 2, 3]"])
def test_it_reports_other_non_feeds_as_errors(body):
    result = parse_document(body)
    assert result.papers == []
    assert result.error


def test_it_uses_the_kind_it_is_told_over_detection(fixture_path):
    result = parse(fixture_path, "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml", kind=Feed.Kind.RSS)
    assert result.kind == Feed.Kind.RSS
    assert result.papers[0].arxiv_id == "2604.21952"


def test_it_reads_an_empty_hugging_face_day_as_no_papers_and_no_error():
    result = parse_document(b"[]")
    assert (result.kind, result.papers, result.error) == (Feed.Kind.HF_DAILY, [], "")


def test_it_skips_hugging_face_items_without_id_or_title():
    result = parse_document(b'[{"paper": {"id": "2607.12345", "title": "Kept"}}, {"paper": {"title": "No id"}}, {"x": 1}]')
    assert [p.arxiv_id for p in result.papers] == ["2607.12345"]
    assert result.skipped == 2
