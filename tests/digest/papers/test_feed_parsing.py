import json
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from digest.models import Feed
from digest.papers.cleaning import clean_text
from digest.papers.feed_limits import (
    MAX_ABSTRACT_CHARS,
    MAX_AUTHOR_NAME_CHARS,
    MAX_AUTHORS,
    MAX_CATEGORIES,
    MAX_CATEGORY_CHARS,
    MAX_COUNT,
    MAX_DOI_CHARS,
    MAX_GUID_CHARS,
    MAX_NOTE_CHARS,
    MAX_PRIMARY_CATEGORY_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    MAX_VERSION,
)
from digest.papers.feed_parsing import parse_document
from tests.support.shared import shared_folder

TRUNCATED = "arxiv_rss-atom_2025-08-20_cs.AI_TRUNCATED_86entries.xml"


def parse(shared_feed, name, **kwargs):
    return parse_document(shared_feed(name).read_bytes(), **kwargs)


def test_it_reads_arxiv_rss2_items(shared_feed):
    result = parse(shared_feed, "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml")
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


def test_it_reads_the_other_arxiv_rss2_capture(shared_feed):
    result = parse(shared_feed, "arxiv_rss2_2026-04-27_cs.AI_trimmed_3items.xml")
    assert [p.arxiv_id for p in result.papers] == ["2604.21935", *[p.arxiv_id for p in result.papers[1:]]]
    assert all(p.title and p.abstract and p.authors for p in result.papers)
    assert all(not p.abstract.startswith("arXiv:") for p in result.papers)


def test_it_reads_an_empty_weekend_feed_as_no_papers_and_no_error(shared_feed):
    result = parse(shared_feed, "arxiv_rss2_2026-08-01_cs.CL_weekend_empty_0items.xml")
    assert (result.papers, result.skipped, result.problems, result.error) == ([], 0, [], "")
    assert result.title == "cs.CL updates on arXiv.org"


def test_it_keeps_the_complete_entries_of_the_truncated_feed(shared_feed):
    result = parse(shared_feed, TRUNCATED)
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


def test_it_reads_every_announce_type_of_the_atom_feed(shared_feed):
    result = parse(shared_feed, TRUNCATED)
    types = {p.announce_type for p in result.papers}
    assert {"new", "cross"} <= types
    assert types <= {"new", "cross", "replace", "replace-cross"}
    cross = next(p for p in result.papers if p.announce_type == "cross")
    assert cross.primary_category != "cs.AI"


def test_it_reads_arxiv_api_entries_with_all_authors_in_order(shared_feed):
    result = parse(shared_feed, "arxiv_api_atom_2026-04-30_cat-cs.LG-OR-cs.AI_max20_20entries.xml")
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


def test_it_reads_doi_and_journal_ref_from_the_api(shared_feed):
    result = parse(shared_feed, "arxiv_api_atom_2026-04-12_search-testing_max10_10entries.xml")
    assert len(result.papers) == 10
    paper = next(p for p in result.papers if p.arxiv_id == "2202.12139")
    assert paper.doi == "10.1109/ICSTW55395.2022.00035"
    assert paper.journal_ref.startswith("Artificial Intelligence in Software Testing")
    assert paper.authors == ["Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker"]
    assert all("\n" not in p.title and "  " not in p.title for p in result.papers)


def test_it_reads_zero_api_results_as_no_papers(shared_feed):
    result = parse(shared_feed, "arxiv_api_atom_2026-04-12_idlist-0000.0000_zero_entries.xml")
    assert (result.papers, result.error) == ([], "")


def test_it_reports_the_api_error_feed_as_an_error_not_a_paper(shared_feed):
    result = parse(shared_feed, "arxiv_api_atom_2026-04-12_idlist-abc_HTTP400_error.xml")
    assert result.papers == []
    assert result.error == "arXiv API error: incorrect id format for abc"


@pytest.mark.parametrize(
    "name, count",
    [("hf_daily_papers_api_2026-07-31_5papers.json", 5), ("hf_daily_papers_api_2026-08-03_3papers.json", 3)],
)
def test_it_reads_hugging_face_daily_papers(shared_feed, name, count):
    raw = json.loads(shared_feed(name).read_text())
    result = parse(shared_feed, name)
    assert result.kind == Feed.Kind.HF_DAILY
    assert len(result.papers) == count
    for item, paper in zip(raw, result.papers, strict=True):
        assert paper.arxiv_id == item["paper"]["id"]
        assert paper.upvotes == item["paper"]["upvotes"]
        assert paper.code_url == item["paper"].get("githubRepo", "") or ""
        assert paper.project_url == (item["paper"].get("projectPage") or "")
        assert paper.authors == [a["name"] for a in item["paper"]["authors"]]
        assert paper.version is None


def test_it_reads_the_hugging_face_extras(shared_feed):
    result = parse(shared_feed, "hf_daily_papers_api_2026-08-03_3papers.json")
    paper = result.papers[0]
    assert paper.code_url == "https://github.com/desBugger/constitutional-mt"
    assert paper.project_url == "https://www.lesswrong.com/posts/n5htoDGvKKJFAjji2"
    assert paper.url == "https://arxiv.org/abs/2607.26654"


HF_DAYS = [
    "hf_daily_papers_api_2024-10-10_46papers.json",  # the older shape: no organisation at all
    "hf_daily_papers_api_2025-09-30_50papers.json",
    "hf_daily_papers_api_2026-05-12_50papers.json",
    "hf_daily_papers_api_2026-05-13_50papers.json",
    "hf_daily_papers_api_2026-07-31_5papers.json",
    "hf_daily_papers_api_2026-08-03_3papers.json",
]


@pytest.mark.parametrize("name", HF_DAYS)
def test_it_reads_what_the_hugging_face_page_shows_beside_a_paper(shared_feed, name):
    raw = json.loads(shared_feed(name).read_text())
    result = parse(shared_feed, name)
    assert (len(result.papers), result.problems) == (len(raw), [])
    for item, paper in zip(raw, result.papers, strict=True):
        assert paper.num_comments == item["numComments"]
        assert paper.thumbnail_url == item["thumbnail"]
        assert paper.thumbnail_url.startswith("https://cdn-thumbnails.huggingface.co/")
        organization = item.get("organization") or item["paper"].get("organization") or {}
        assert paper.organization == (organization.get("fullname") or organization.get("name") or "")


def test_it_reads_the_organisation_by_its_full_name(shared_feed):
    papers = parse(shared_feed, "hf_daily_papers_api_2026-08-03_3papers.json").papers
    assert [paper.organization for paper in papers] == [
        "University of Oxford",
        "European Molecular Biology Laboratory",
        "KinaMind",
    ]
    # The older shape has no organisation anywhere, and a submitter's is not the paper's.
    assert {paper.organization for paper in parse(shared_feed, HF_DAYS[0]).papers} == {""}
    assert {paper.organization for paper in parse(shared_feed, HF_DAYS[1]).papers} == {""}


def _hf_item(**extra) -> bytes:
    item = {"paper": {"id": "2607.26654", "title": "A paper", "upvotes": 3}, "numComments": 2, **extra}
    return json.dumps([item]).encode()


@pytest.mark.parametrize(
    "thumbnail",
    [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "http://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2607.26654.png",
        "https://evil.example/pixel.png",
        "https://huggingface.co.evil.example/x.png",
        "https://evilhuggingface.co/x.png",
        "https://user@cdn-thumbnails.huggingface.co/x.png",
        "https://cdn-thumbnails.huggingface.co:8443/x.png",
        "//cdn-thumbnails.huggingface.co/x.png",
        ["https://cdn-thumbnails.huggingface.co/x.png"],
    ],
)
def test_a_thumbnail_off_hugging_face_or_not_https_is_dropped(thumbnail):
    result = parse_document(_hf_item(thumbnail=thumbnail))
    (paper,) = result.papers
    assert paper.thumbnail_url == ""
    assert paper.num_comments == 2


def test_a_hugging_face_thumbnail_is_kept_and_odd_extras_are_bounded():
    thumbnail = "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2607.26654.png"
    organization = {"name": "x", "fullname": "<b>Lab</b> " + "o" * 500}
    result = parse_document(_hf_item(thumbnail=thumbnail, organization=organization, numComments=-4))
    (paper,) = result.papers
    assert paper.thumbnail_url == thumbnail
    assert paper.organization.startswith("Lab ooo") and len(paper.organization) <= 200
    assert paper.num_comments == 0
    assert result.trimmed == 1
    assert parse_document(_hf_item(numComments="many", organization="Oxford")).papers[0].num_comments is None
    assert parse_document(_hf_item(organization="Oxford")).papers[0].organization == ""


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


def test_it_uses_the_kind_it_is_told_over_detection(shared_feed):
    result = parse(shared_feed, "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml", kind=Feed.Kind.RSS)
    assert result.kind == Feed.Kind.RSS
    assert result.papers[0].arxiv_id == "2604.21952"


def test_it_reads_an_empty_hugging_face_day_as_no_papers_and_no_error():
    result = parse_document(b"[]")
    assert (result.kind, result.papers, result.error) == (Feed.Kind.HF_DAILY, [], "")


def test_it_skips_hugging_face_items_without_id_or_title():
    result = parse_document(
        b'[{"paper": {"id": "2607.12345", "title": "Kept"}}, {"paper": {"title": "No id"}}, {"x": 1}]'
    )
    assert [p.arxiv_id for p in result.papers] == ["2607.12345"]
    assert result.skipped == 2


# Hostile and oversized feeds: each attack below is a document a feed could send.

BIG = 10 * 1024 * 1024


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Lab blog</title>'
        "<link>https://lab.example/</link><description>d</description>" + "".join(items) + "</channel></rss>"
    ).encode()


def rss_item(title: str = "A fine paper", guid: str = "https://lab.example/p/1", extra: str = "") -> str:
    return f"<item><title>{title}</title><guid>{guid}</guid>{extra}</item>"


def hf(*papers: dict) -> bytes:
    return json.dumps([{"paper": {"title": "A paper", "summary": "An abstract.", **p}} for p in papers]).encode()


def test_a_10_mb_title_is_cut_to_its_cap_and_the_entry_counted():
    result = parse_document(rss(rss_item("A" * BIG), rss_item(guid="https://lab.example/p/2")))
    big, other = result.papers
    assert len(big.title) == MAX_TITLE_CHARS and big.title.endswith("\u2026")
    assert other.title == "A fine paper"
    assert (result.trimmed, result.skipped) == (1, 0)
    assert result.problems == [f"trimmed 1 entry: title cut to {MAX_TITLE_CHARS:,} characters"]


def test_a_10_mb_hugging_face_title_is_cut_too():
    result = parse_document(hf({"id": "2607.00001", "title": "B" * BIG}, {"id": "2607.00002"}))
    assert [len(p.title) for p in result.papers] == [MAX_TITLE_CHARS, len("A paper")]
    assert result.trimmed == 1


def test_every_field_over_its_cap_is_cut_and_named_in_the_problems():
    """An arXiv-API-shaped entry (any host can send one) with every text and list field oversized."""
    authors = "".join(f"<author><name>Author {n}</name></author>" for n in range(MAX_AUTHORS + 5))
    categories = "".join(f'<category term="cat.{n}"/>' for n in range(MAX_CATEGORIES + 5))
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom"
      xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
  <id>https://arxiv.org/api/x</id><title>arXiv Query</title><opensearch:totalResults>1</opensearch:totalResults>
  <entry><id>http://arxiv.org/abs/2604.26951v1</id><title>Fine title</title>
    <summary>{"word " * 5000}</summary>{authors}<author><name>{"N" * 5000}</name></author>
    <arxiv:primary_category term="{"p" * 500}"/>{categories}<category term="{"c" * 5000}"/>
    <arxiv:doi>{"1" * 5000}</arxiv:doi><arxiv:journal_ref>{"j" * 5000}</arxiv:journal_ref>
    <arxiv:comment>{"c" * 5000}</arxiv:comment></entry>
</feed>""".encode()
    result = parse_document(body)
    assert result.kind == Feed.Kind.ARXIV_API
    (paper,) = result.papers
    assert len(paper.abstract) == MAX_ABSTRACT_CHARS
    assert len(paper.authors) == MAX_AUTHORS and paper.authors[0] == "Author 0"
    assert len(paper.categories) == MAX_CATEGORIES
    assert len(paper.primary_category) == MAX_PRIMARY_CATEGORY_CHARS
    assert (len(paper.doi), len(paper.journal_ref), len(paper.comment)) == (
        MAX_DOI_CHARS,
        MAX_NOTE_CHARS,
        MAX_NOTE_CHARS,
    )
    assert result.trimmed == 1
    assert set(result.problems) == {
        f"trimmed 1 entry: {reason}"
        for reason in (
            f"abstract cut to {MAX_ABSTRACT_CHARS:,} characters",
            f"authors cut to the first {MAX_AUTHORS:,}",
            f"categories cut to the first {MAX_CATEGORIES:,}",
            f"primary category cut to {MAX_PRIMARY_CATEGORY_CHARS:,} characters",
            f"doi cut to {MAX_DOI_CHARS:,} characters",
            f"journal reference cut to {MAX_NOTE_CHARS:,} characters",
            f"comment cut to {MAX_NOTE_CHARS:,} characters",
        )
    }


def test_an_overlong_author_name_or_category_is_cut_and_the_others_kept():
    body = rss(
        rss_item(
            extra=f"<author>{'Zed ' * 100_000}, Ann Lee</author>"
            f"<category>{'q' * 5000}</category><category>ml</category>"
        )
    )
    (paper,) = parse_document(body).papers
    assert [len(name) for name in paper.authors] == [MAX_AUTHOR_NAME_CHARS, len("Ann Lee")]
    assert [len(term) for term in paper.categories] == [MAX_CATEGORY_CHARS, 2]


@pytest.mark.parametrize(
    "author",
    ["Z" * 200_000, "x@" + "b." * 100_000, "&#90;" * 200_000, f"<![CDATA[{'Z' * 200_000}]]>"],
    ids=["long-word", "long-domain", "encoded-word", "cdata-word"],
)
@pytest.mark.parametrize("element", ["author", "managingEditor", "webMaster", "dc:publisher", "dc:creator"])
def test_an_author_of_one_endless_word_is_read_in_linear_time(element, author):
    """feedparser's e-mail regex took a minute for 32 KB of this, and most of an hour for 200 KB."""
    body = rss(rss_item(extra=f"<{element}>{author}</{element}>")).replace(
        b"<rss ", b'<rss xmlns:dc="http://purl.org/dc/elements/1.1/" '
    )
    started = time.monotonic()
    result = parse_document(body)
    assert time.monotonic() - started < 5
    assert [p.title for p in result.papers] == ["A fine paper"]


def test_an_rss_author_with_an_address_is_still_read():
    (paper,) = parse_document(rss(rss_item(extra="<author>ann.lee+feeds@lab.example.org (Ann Lee)</author>"))).papers
    assert paper.authors == ["Ann Lee"]


def test_a_cut_breaks_no_entity_surrogate_pair_or_accented_letter():
    entities = parse_document(rss(rss_item("&amp;amp;" * 5000))).papers[0].title
    assert set(entities[:-1]) == {"&"} and entities.endswith("\u2026")
    accented = parse_document(rss(rss_item("e\u0301" * 5000))).papers[0].title
    assert accented[:-1].endswith("e\u0301") and len(accented) <= MAX_TITLE_CHARS
    emoji = parse_document(hf({"id": "2607.00001", "title": "\U0001f600" * 5000})).papers[0].title
    assert emoji == "\U0001f600" * (MAX_TITLE_CHARS - 1) + "\u2026"
    emoji.encode("utf-8")  # a split pair would leave a surrogate, which no database driver encodes


def test_an_entry_with_a_100_kb_id_is_skipped_and_counted_and_the_others_kept():
    result = parse_document(rss(rss_item(guid="https://lab.example/" + "x" * 100_000), rss_item()))
    assert [p.guid for p in result.papers] == ["https://lab.example/p/1"]
    assert result.skipped == 1
    assert result.problems == [f"skipped 1 entry with an id over {MAX_GUID_CHARS:,} characters"]
    json_result = parse_document(hf({"id": "x" * 100_000}, {"id": "2607.00002"}))
    assert [p.arxiv_id for p in json_result.papers] == ["2607.00002"] and json_result.skipped == 1


@pytest.mark.parametrize("digits", ["1" + "0" * 30, "9" * 5000, "0"])
def test_an_arxiv_id_with_a_version_out_of_range_keeps_no_version(digits):
    link = f"https://arxiv.org/abs/2612.77777v{digits}"
    result = parse_document(rss(rss_item(guid=link)))
    (paper,) = result.papers
    assert (paper.arxiv_id, paper.version) == ("2612.77777", None)
    assert paper.url == "https://arxiv.org/abs/2612.77777"
    assert result.problems == [f"trimmed 1 entry: version outside 1 to {MAX_VERSION:,} ignored"]


def test_an_arxiv_api_entry_with_a_version_of_10_to_the_30_keeps_no_version_nor_a_pdf_version():
    body = (FIXTURES_API_ONE.replace("2604.26951v1", "2604.26951v1" + "0" * 30)).encode()
    (paper,) = parse_document(body).papers
    assert (paper.arxiv_id, paper.version, paper.pdf_url) == ("2604.26951", None, "https://arxiv.org/pdf/2604.26951")


FIXTURES_API_ONE = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
  <id>https://arxiv.org/api/x</id><title>arXiv Query</title><opensearch:totalResults>1</opensearch:totalResults>
  <entry><id>http://arxiv.org/abs/2604.26951v1</id><title>A title</title><summary>An abstract.</summary>
    <author><name>Ann Lee</name></author></entry>
</feed>"""


@pytest.mark.parametrize(
    "date, noted",
    [
        ("Mon, 01 Jan 0001 00:00:00 GMT", True),
        ("Mon, 01 Jan 99999 00:00:00 GMT", False),  # unreadable: no date, nothing cut
        ("Tue, 01 Jan 2999 00:00:00 GMT", True),  # a paper fresh for centuries
    ],
)
def test_a_date_out_of_range_is_no_date(date, noted):
    result = parse_document(rss(rss_item(extra=f"<pubDate>{date}</pubDate>")))
    (paper,) = result.papers
    assert (paper.published, paper.updated) == (None, None)
    assert (result.trimmed == 1) is noted
    assert all("date out of range" in p for p in result.problems)


@pytest.mark.parametrize(
    "published", ["0001-01-01T00:00:00Z", "99999-01-01T00:00:00Z", "2999-01-01T00:00:00Z", 5, None]
)
def test_a_json_date_out_of_range_or_of_another_type_is_no_date(published):
    (paper,) = parse_document(hf({"id": "2607.00001", "publishedAt": published})).papers
    assert paper.published is None


def test_a_date_just_past_midnight_us_eastern_is_kept():
    soon = datetime.now(UTC) + timedelta(hours=20)
    (paper,) = parse_document(rss(rss_item(extra=f"<pubDate>{format_datetime(soon)}</pubDate>"))).papers
    assert paper.published == soon.replace(microsecond=0)


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        " JavaScript:alert(document.cookie)",
        "java\tscript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "https://evil.example/a b",
        "https://?no=host",
        "//evil.example/x",
        "https:\\\\evil.example",
        "https://ok.example/" + "a" * 2000,
        "ftp://files.example/paper.pdf",
    ],
)
def test_only_an_http_link_that_fits_its_column_is_kept(link):
    from xml.sax.saxutils import escape

    rss_paper = parse_document(rss(rss_item(extra=f"<link>{escape(link)}</link>"))).papers[0]
    hf_paper = parse_document(hf({"id": "2607.00001", "githubRepo": link, "projectPage": link})).papers[0]
    assert (rss_paper.url, hf_paper.code_url, hf_paper.project_url) == ("", "", "")


def test_a_script_link_is_named_in_the_problems_and_a_plain_id_link_is_not():
    result = parse_document(rss(rss_item(extra="<link>javascript:alert(1)</link>"), rss_item(guid="urn:x:2")))
    assert result.trimmed == 1
    assert result.problems == [
        f"trimmed 1 entry: link dropped: not an http(s) address of at most {MAX_URL_CHARS:,} characters"
    ]


def test_an_http_link_of_any_case_is_kept_as_sent():
    (paper,) = parse_document(rss(rss_item(extra="<link>HTTPS://Lab.example/p/1?a=1#x</link>"))).papers
    assert paper.url == "HTTPS://Lab.example/p/1?a=1#x"


CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _texts(paper) -> list[str]:
    return [
        paper.guid,
        paper.title,
        paper.abstract,
        *paper.authors,
        *paper.categories,
        paper.url,
        paper.code_url,
        paper.project_url,
    ]


def test_nul_bytes_and_control_characters_in_a_feed_leave_no_trace():
    body = rss(
        rss_item(
            "Null\x00title\x07",
            "https://lab.example/p/\x001",
            "<description>a&#0;b\x1bc</description><author>Ann\x00Lee</author><category>m\x00l</category>"
            "<link>https://lab.example/p/1\x00</link>",
        )
    )
    result = parse_document(body)
    (paper,) = result.papers
    assert not any(CONTROL.search(text) for text in _texts(paper)), _texts(paper)
    assert paper.title == "Null title"


def test_nul_bytes_and_lone_surrogates_in_json_leave_no_trace():
    body = (
        b'[{"paper": {"id": "2607.0\\u00000001", "title": "T\\u0000i\\ud800tle", "summary": "a\\udfffb",'
        b' "authors": [{"name": "Ann\\u0000 Lee\\ud83d"}], "githubRepo": "https://github.com/a\\u0000/b"}},'
        b' {"paper": {"id": "hf\\u0000\\ud800id", "title": "Second"}}]'
    )
    result = parse_document(body)
    assert len(result.papers) == 2
    for paper in result.papers:
        assert not any(CONTROL.search(text) for text in _texts(paper)), _texts(paper)
        "".join(_texts(paper)).encode("utf-8")
    assert result.papers[0].code_url == ""


@pytest.mark.parametrize(
    "reference",
    [
        "&#xD800;",
        "&#55296;",
        "&#x110000;",
        "&#99999999999999999999;",
        "&#x" + "f" * 5000 + ";",
        "&#" + "9" * 5000 + ";",
    ],
)
def test_a_numeric_reference_no_character_has_breaks_only_its_own_text(reference):
    result = parse_document(rss(rss_item(f"Bad {reference} title"), rss_item(guid="https://lab.example/p/2")))
    assert result.error == ""
    assert [p.title for p in result.papers] == ["Bad \ufffd title", "A fine paper"]


UPVOTES = [
    ("9223372036854775808", MAX_COUNT, "upvotes clamped"),  # 2^63: was an OverflowError
    ("2147483648", MAX_COUNT, "upvotes clamped"),  # 2^31: PostgreSQL's integer ends one below
    ("1" + "0" * 5000, MAX_COUNT, "upvotes clamped"),  # past Python's 4,300-digit conversion limit
    ("-5", 0, "upvotes clamped"),
    ("12.9", 12, None),
    ('"12k"', None, "upvotes not a number"),
    ("null", None, None),
    ("1e400", None, "upvotes not a number"),
    ("NaN", None, "upvotes not a number"),
    ("-Infinity", None, "upvotes not a number"),
    ("true", None, "upvotes not a number"),
    ("[1]", None, "upvotes not a number"),
]


@pytest.mark.parametrize("raw, stored, reason", UPVOTES)
def test_a_hostile_json_number_is_clamped_or_ignored_and_the_document_read_whole(raw, stored, reason):
    body = (
        '[{"paper": {"id": "2607.00001", "title": "Bad", "upvotes": %s}},'  # noqa: UP031 - JSON braces, no f-string
        ' {"paper": {"id": "2607.00002", "title": "Good", "upvotes": 3}}]' % raw
    ).encode()
    result = parse_document(body)
    assert result.error == ""
    assert [(p.arxiv_id, p.upvotes) for p in result.papers] == [("2607.00001", stored), ("2607.00002", 3)]
    assert (result.trimmed, bool(result.problems)) == (int(reason is not None), reason is not None)
    assert all(reason in problem for problem in result.problems)


@pytest.mark.parametrize(
    "item",
    [
        {"paper": {"id": "2607.00001", "title": 12345}},
        {"paper": {"id": "2607.00001", "title": ["a", "list"]}},
        {"paper": {"id": {"an": "object"}, "title": "T"}},
        {"paper": {"id": "2607.00001", "title": "T", "authors": "Ann Lee"}},
        {"paper": {"id": "2607.00001", "title": "T", "authors": 7}},
        {"paper": {"id": "2607.00001", "title": "T", "authors": [{"name": 5}, None, "x"]}},
        {"paper": {"id": "2607.00001", "title": "T", "summary": {"x": 1}, "githubRepo": 5, "projectPage": [1]}},
        {"paper": ["not", "an", "object"], "title": "T"},
        "a string",
        None,
    ],
)
def test_a_json_item_of_the_wrong_shape_never_fails_the_document(item):
    result = parse_document(json.dumps([item, {"paper": {"id": "2607.00002", "title": "Good"}}]).encode())
    assert result.error == ""
    assert result.papers[-1].title == "Good"
    assert len(result.papers) + result.skipped == 2


def test_a_deeply_nested_json_document_is_an_error_not_a_crash():
    result = parse_document(b"[" * 100_000)
    assert result.papers == [] and result.error.startswith("not a feed: invalid JSON")


def test_an_arxiv_api_error_message_is_cut(shared_feed):
    body = shared_feed("arxiv_api_atom_2026-04-12_idlist-abc_HTTP400_error.xml").read_bytes()
    body = body.replace(b"incorrect id format for abc", b"x" * BIG)
    result = parse_document(body)
    assert result.error.startswith("arXiv API error: xxx") and len(result.error) < 400


def test_no_real_capture_is_trimmed():
    """Every cap is above every real value: no paper of the captures in ../shared/feeds is cut."""
    captures = [
        p for p in shared_folder("feeds").iterdir() if p.suffix in (".xml", ".json") and "oai-pmh" not in p.name
    ]
    assert len(captures) >= 15
    papers = 0
    for path in captures:
        result = parse_document(path.read_bytes())
        assert result.trimmed == 0 and not any(p.startswith("trimmed") for p in result.problems), path.name
        papers += len(result.papers)
    assert papers > 1500


def test_the_caps_are_above_the_largest_values_in_arxiv_s_bulk_metadata():
    """The OAI-PMH harvests and the metadata snapshot (no feed format, read here directly)."""
    feeds = shared_folder("feeds")
    titles, abstracts, author_counts, names, category_counts = [], [], [], [], []
    for path in feeds.glob("*oai-pmh*.xml"):
        text = path.read_text()
        for record in re.findall(r"<record>(.*?)</record>", text, re.S):
            titles += [len(clean_text(t)) for t in re.findall(r"<(?:dc:)?title>(.*?)</(?:dc:)?title>", record, re.S)]
            abstracts += [len(clean_text(a)) for a in re.findall(r"<(?:abstract|dc:description)>(.*?)</", record, re.S)]
            author_counts.append(record.count("<author>") + record.count("<dc:creator>"))
            names += [len(clean_text(n)) for n in re.findall(r"<dc:creator>(.*?)</dc:creator>", record, re.S)]
            category_counts += [len(c.split()) for c in re.findall(r"<categories>(.*?)</categories>", record)]
    for line in next(feeds.glob("*.jsonl")).read_text().splitlines():
        record = json.loads(line)
        titles.append(len(clean_text(record["title"])))
        abstracts.append(len(clean_text(record["abstract"])))
        author_counts.append(len(record["authors_parsed"]))
        names += [len(" ".join(part for part in name if part)) for name in record["authors_parsed"]]
        category_counts.append(len(record["categories"].split()))
    assert len(titles) > 3000
    assert max(titles) < MAX_TITLE_CHARS / 4
    assert max(abstracts) < MAX_ABSTRACT_CHARS / 4
    assert 500 < max(author_counts) < MAX_AUTHORS
    assert max(names) < MAX_AUTHOR_NAME_CHARS / 2
    assert max(category_counts) < MAX_CATEGORIES / 3
