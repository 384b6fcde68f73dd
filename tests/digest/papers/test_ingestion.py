import json
import re
from dataclasses import replace
from email.utils import format_datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from digest.models import Feed, Paper, PaperSource
from digest.papers import paper_store
from digest.papers.feed_limits import MAX_ABSTRACT_CHARS, MAX_COUNT, MAX_TITLE_CHARS
from digest.papers.feed_parsing import ParsedPaper, parse_document
from digest.papers.ingestion import (
    MAX_LAST_ERROR_CHARS,
    ingest_all,
    ingest_document,
    ingest_feed,
    ingest_source,
    speaks_for_arxiv,
    sync_feeds_from_settings,
)
from digest.papers.paper_store import StoreCounts, store_papers
from digest.tasks.ingest import ingest_feeds
from tests.support.feed_server import FeedServer, Route

pytestmark = pytest.mark.django_db

RSS_LG = "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml"
RSS_AI = "arxiv_rss2_2026-04-27_cs.AI_trimmed_3items.xml"
API_20 = "arxiv_api_atom_2026-04-30_cat-cs.LG-OR-cs.AI_max20_20entries.xml"
TRUNCATED = "arxiv_rss-atom_2025-08-20_cs.AI_TRUNCATED_86entries.xml"
HF_5 = "hf_daily_papers_api_2026-07-31_5papers.json"
BIG = 10 * 1024 * 1024
ALL_CAPTURES = [
    ("arxiv_api_atom_2026-04-12_idlist-0000.0000_zero_entries.xml", 0),
    ("arxiv_api_atom_2026-04-12_search-testing_max10_10entries.xml", 10),
    (API_20, 20),
    (TRUNCATED, 86),
    (RSS_AI, 3),
    (RSS_LG, 3),
    ("arxiv_rss2_2026-08-01_cs.CL_weekend_empty_0items.xml", 0),
    (HF_5, 5),
    ("hf_daily_papers_api_2026-08-03_3papers.json", 3),
]


@pytest.fixture(autouse=True)
def _no_politeness_delay(settings):
    settings.FEED_HOST_DELAY_SECONDS = 0
    settings.FEED_TIMEOUT_SECONDS = 2


def paper(arxiv_id: str, version: int | None = 1, **fields) -> ParsedPaper:
    values = {"title": f"Paper {arxiv_id}", "abstract": "An abstract.", "authors": ["Ann Lee"]} | fields
    return ParsedPaper(guid=arxiv_id, arxiv_id=arxiv_id, version=version, **values)


@pytest.mark.parametrize("name, count", ALL_CAPTURES)
def test_it_ingests_every_capture_and_again_without_change(shared_feed, name, count):
    first = ingest_source(str(shared_feed(name)))
    assert not first.failed
    assert (first.counts.new, Paper.objects.count()) == (count, count)
    second = ingest_source(str(shared_feed(name)))
    assert (second.counts.new, second.counts.updated, second.counts.unchanged) == (0, 0, count)
    assert Paper.objects.count() == count


def test_it_stores_the_complete_entries_of_the_truncated_feed_and_says_why(shared_feed):
    report = ingest_source(str(shared_feed(TRUNCATED)))
    assert not report.failed
    assert (report.counts.new, report.counts.skipped) == (86, 1)
    assert "truncated" in report.error
    assert Paper.objects.filter(abstract="").count() == 0


def test_it_fails_the_api_error_feed_and_stores_nothing(shared_feed):
    report = ingest_source(str(shared_feed("arxiv_api_atom_2026-04-12_idlist-abc_HTTP400_error.xml")))
    assert report.failed
    assert report.error == "arXiv API error: incorrect id format for abc"
    assert Paper.objects.count() == 0


def test_it_stores_plain_text_fields(shared_feed):
    ingest_source(str(shared_feed(RSS_LG)))
    stored = Paper.objects.get(arxiv_id="2604.21952")
    assert stored.guid == "2604.21952"
    assert stored.version == 1
    assert stored.authors[0] == "Muhammad Shafique"
    assert stored.categories[0] == "cs.LG" and stored.primary_category == "cs.LG"
    assert "visual resolution & stride" in stored.abstract
    assert not stored.abstract.startswith("arXiv:")
    assert stored.url == "https://arxiv.org/abs/2604.21952"


def test_it_merges_the_same_paper_from_hugging_face_and_arxiv_into_one_row():
    hf = paper(
        "2607.23193",
        version=None,
        upvotes=3,
        code_url="https://github.com/MAC-AutoML/OmniScope",
        project_url="https://omniscope.example",
    )
    arxiv = paper(
        "2607.23193",
        categories=["cs.CV", "cs.CL"],
        primary_category="cs.CV",
        pdf_url="https://arxiv.org/pdf/2607.23193v1",
        upvotes=None,
    )
    assert store_papers([hf]) == StoreCounts(new=1)
    assert store_papers([arxiv], from_arxiv=True) == StoreCounts(updated=1)
    assert store_papers([replace(hf, upvotes=7)]) == StoreCounts(updated=1)
    assert store_papers([arxiv], from_arxiv=True) == StoreCounts(unchanged=1)
    assert store_papers([replace(hf, upvotes=7)]) == StoreCounts(unchanged=1)
    stored = Paper.objects.get()
    assert stored.upvotes == 7
    assert stored.code_url == "https://github.com/MAC-AutoML/OmniScope"
    assert stored.project_url == "https://omniscope.example"
    assert stored.categories == ["cs.CV", "cs.CL"] and stored.primary_category == "cs.CV"
    assert stored.pdf_url == "https://arxiv.org/pdf/2607.23193v1"


def test_it_merges_arxiv_first_then_hugging_face(shared_feed):
    arxiv = paper("2607.23193", categories=["cs.CV"])
    store_papers([arxiv], from_arxiv=True)
    store_papers([paper("2607.23193", version=None, title="A different HF title", upvotes=12, categories=[])])
    stored = Paper.objects.get()
    assert (stored.title, stored.categories, stored.upvotes) == ("Paper 2607.23193", ["cs.CV"], 12)


def test_it_stores_the_hugging_face_extras_from_a_capture_and_keeps_them_under_arxiv(shared_feed):
    store_papers(parse_document(shared_feed("hf_daily_papers_api_2026-08-03_3papers.json").read_bytes()).papers)
    stored = Paper.objects.get(arxiv_id="2607.26654")
    thumbnail = "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2607.26654.png"
    assert (stored.organization, stored.num_comments, stored.thumbnail_url) == ("University of Oxford", 1, thumbnail)

    store_papers([paper("2607.26654", categories=["cs.CL"])], from_arxiv=True)
    store_papers([paper("2607.26654", version=None, num_comments=0, organization="Other", thumbnail_url="")])
    store_papers([paper("2607.26654", version=None, num_comments=5)])

    stored.refresh_from_db()
    assert (stored.organization, stored.num_comments, stored.thumbnail_url) == ("University of Oxford", 5, thumbnail)
    assert stored.categories == ["cs.CL"]


def test_a_paper_from_elsewhere_has_no_comment_count():
    store_papers([paper("2607.2")], from_arxiv=True)
    assert (Paper.objects.get().num_comments, Paper.objects.get().organization) == (None, "")


def test_it_never_lowers_upvotes():
    store_papers([paper("2607.1", version=None, upvotes=9)])
    assert store_papers([paper("2607.1", version=None, upvotes=2)]) == StoreCounts(unchanged=1)
    assert Paper.objects.get().upvotes == 9


def test_a_newer_version_updates_the_paper_and_an_older_one_changes_nothing():
    store_papers(
        [paper("2604.21952", version=1, title="First title", comment="v1 comment", upvotes=4)], from_arxiv=True
    )
    revised = paper("2604.21952", version=2, title="Revised title", comment="")
    assert store_papers([revised], from_arxiv=True) == StoreCounts(updated=1)
    stored = Paper.objects.get()
    assert (stored.version, stored.title, stored.comment, stored.upvotes) == (2, "Revised title", "v1 comment", 4)
    older = paper("2604.21952", version=1, title="First title", categories=["cs.LG"], upvotes=99)
    assert store_papers([older], from_arxiv=True) == StoreCounts(unchanged=1)
    stored.refresh_from_db()
    assert (stored.version, stored.title, stored.categories, stored.upvotes) == (2, "Revised title", [], 4)


def test_a_replacement_announcement_updates_rather_than_duplicates(shared_feed):
    ingest_source(str(shared_feed(RSS_LG)))
    replaced = parse_document(shared_feed(RSS_LG).read_bytes()).papers[0]
    replaced = replace(replaced, version=2, announce_type="replace", title="Focus Session, revised")
    assert store_papers([replaced], from_arxiv=True) == StoreCounts(updated=1)
    assert Paper.objects.filter(arxiv_id="2604.21952").count() == 1
    assert Paper.objects.get(arxiv_id="2604.21952").title == "Focus Session, revised"


def test_it_merges_duplicates_within_one_batch():
    counts = store_papers([paper("2601.1", version=1), paper("2601.1", version=2, title="v2")], from_arxiv=True)
    assert (counts.new, counts.unchanged) == (1, 1)
    assert Paper.objects.get().title == "v2"


def test_papers_without_an_arxiv_id_are_keyed_by_their_guid():
    blog = ParsedPaper(guid="https://lab.example/p/1", title="A blog post")
    assert store_papers([blog]) == StoreCounts(new=1)
    assert store_papers([blog]) == StoreCounts(unchanged=1)
    assert Paper.objects.get().arxiv_id is None


def _insert_batches(model, count: int) -> int:
    """INSERTs a backend needs for `count` rows: one on PostgreSQL, SQLite caps bound parameters."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    per_query = connection.ops.bulk_batch_size(fields, [None] * count)
    return -(-count // per_query)


def test_storing_costs_the_same_queries_for_a_small_and_a_large_batch():
    feed = Feed.objects.create(url="https://example.com/feed")
    store_papers([paper("2501.00001")], feed)

    def queries_for(batch):
        with CaptureQueriesContext(connection) as ctx:
            store_papers(batch, feed)
        return len(ctx.captured_queries)

    small = [paper(f"2502.{i:05d}") for i in range(3)] + [paper("2501.00001", version=2)]
    large = [paper(f"2503.{i:05d}") for i in range(300)] + [paper("2501.00001", version=3)]
    extra_inserts = _insert_batches(Paper, 300) - 1
    small_queries, large_queries = queries_for(small), queries_for(large)
    assert small_queries <= 8
    assert large_queries == small_queries + extra_inserts
    assert PaperSource.objects.filter(feed=feed).count() == 304


def test_a_crash_midway_leaves_nothing_half_written(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(paper_store, "_link_sources", fail)
    feed = Feed.objects.create(url="https://example.com/feed")
    with pytest.raises(RuntimeError):
        store_papers([paper("2501.1"), paper("2501.2")], feed)
    assert Paper.objects.count() == 0


def test_ingest_feed_uses_conditional_get_and_records_the_run(shared_feed):
    with FeedServer() as server:
        server.routes["/rss"] = Route(
            body=shared_feed(RSS_LG).read_bytes(), etag='"abc"', last_modified="Mon, 27 Apr 2026 04:00:01 GMT"
        )
        feed = Feed.objects.create(url=server.url("/rss"))
        first = ingest_feed(feed)
        feed.refresh_from_db()
        assert (first.counts.new, feed.last_new, feed.etag, feed.last_error) == (3, 3, '"abc"', "")
        assert feed.last_modified == "Mon, 27 Apr 2026 04:00:01 GMT"
        assert feed.last_polled_at and feed.last_success_at
        assert feed.name == "cs.LG updates on arXiv.org"
        assert PaperSource.objects.filter(feed=feed).count() == 3

        second = ingest_feed(feed)
        feed.refresh_from_db()
        assert second.not_modified
        assert server.requests[1][1]["If-None-Match"] == '"abc"'
        assert server.requests[1][1]["User-Agent"].startswith("Paperboy/")
        assert (feed.last_new, feed.last_unchanged, feed.last_error) == (0, 0, "")
    assert Paper.objects.count() == 3


@pytest.mark.parametrize(
    "route, message",
    [
        (Route(status=500, body=b"oops"), "HTTP 500"),
        (
            Route(body=b"<!DOCTYPE html><html><body>Sign in</body></html>", headers={"Content-Type": "text/html"}),
            "not a feed: got an HTML page",
        ),
        (Route(redirect_to="/bad"), "redirects"),
        (Route(body=b"x", delay=30), "no answer within"),
    ],
)
def test_a_bad_feed_records_its_error_and_the_others_go_on(shared_feed, settings, route, message):
    settings.FEED_TIMEOUT_SECONDS = 0.5
    with FeedServer() as server:
        server.routes["/bad"] = route
        server.routes["/good"] = Route(body=shared_feed(RSS_AI).read_bytes())
        bad = Feed.objects.create(url=server.url("/bad"), etag='"old"')
        good = Feed.objects.create(url=server.url("/good"))
        reports = ingest_all([bad, good])
    bad.refresh_from_db()
    good.refresh_from_db()
    assert [r.failed for r in reports] == [True, False]
    assert message in bad.last_error and bad.last_success_at is None and bad.last_polled_at
    assert bad.etag == '"old"'
    assert (good.last_new, good.last_error) == (3, "")
    assert Paper.objects.count() == 3


def test_sync_creates_feeds_from_settings_once(settings):
    settings.FEEDS = ["https://rss.arxiv.org/rss/cs.LG", "https://huggingface.co/api/daily_papers"]
    assert sync_feeds_from_settings() == 2
    assert sync_feeds_from_settings() == 0
    assert set(Feed.objects.values_list("url", flat=True)) == set(settings.FEEDS)


def test_the_task_polls_every_enabled_feed(settings, shared_feed):
    settings.FEEDS = [str(shared_feed(RSS_LG)), str(shared_feed(HF_5))]
    Feed.objects.create(url=str(shared_feed(RSS_AI)), enabled=False)
    result = ingest_feeds()
    assert result == {"feeds": 2, "failed": 0, "new": 8, "updated": 0}
    assert Paper.objects.count() == 8


def test_the_command_prints_counts_per_source_and_fails_when_one_is_unreadable(shared_feed, tmp_path, capsys):
    with pytest.raises(CommandError, match="could not read 1 of 2 sources"):
        call_command("ingest", str(shared_feed(RSS_LG)), str(tmp_path / "missing.xml"))
    out, err = capsys.readouterr()
    assert f"{shared_feed(RSS_LG)}: new=3 updated=0 unchanged=0 skipped=0 trimmed=0 errors=0" in out
    assert "missing.xml FAILED" in out and "no such file" in err


def test_the_command_without_sources_ingests_every_enabled_feed(settings, shared_feed, capsys):
    settings.FEEDS = [str(shared_feed(API_20))]
    call_command("ingest")
    out, _ = capsys.readouterr()
    assert "new=20" in out
    assert Feed.objects.get().last_new == 20


def test_each_feed_run_logs_one_ingest_event_with_its_counts(shared_feed, caplog):
    feed = Feed.objects.create(url=str(shared_feed(TRUNCATED)))
    with caplog.at_level("INFO", logger="digest.papers.ingestion"):
        ingest_feed(feed)
    events = [r for r in caplog.records if getattr(r, "event", "") == "ingest.feed"]
    assert len(events) == 1
    assert (events[0].feed_id, events[0].new, events[0].skipped, events[0].errors) == (feed.pk, 86, 1, 2)
    assert events[0].ms >= 0 and "truncated" in events[0].error


def test_versionless_duplicates_in_one_batch_still_merge_into_a_newer_row():
    store_papers([paper("2601.2", version=3)], from_arxiv=True)
    counts = store_papers([paper("2601.2", version=None, upvotes=5), paper("2601.2", version=None, upvotes=8)])
    assert (counts.updated, counts.unchanged) == (1, 1)
    assert (Paper.objects.get().version, Paper.objects.get().upvotes) == (3, 8)


# Hostile feeds, stored: the same attacks through ingestion and the database (both passes).

ARXIV_RSS_URL = "https://rss.arxiv.org/rss/cs.LG"
ARXIV_API_URL = "http://export.arxiv.org/api/query?search_query=cat:cs.LG"
REAL_ID = "2604.21952"  # the first paper of RSS_LG, version 1
REAL_TITLE = "Focus Session: Hardware and Software Techniques for Accelerating Multimodal Foundation Models"


def generic_rss(*items: str, title: str = "Aggregator") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        "<link>https://aggregator.example/</link><description>d</description>" + "".join(items) + "</channel></rss>"
    ).encode()


def impostor_item(link: str = f"https://arxiv.org/abs/{REAL_ID}v9", title: str = "Buy cheap pills") -> str:
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        "<description>Not the abstract.</description><author>Mallory</author>"
        "<category>spam</category><pubDate>Mon, 27 Apr 2026 00:00:00 GMT</pubDate></item>"
    )


def ingest_as(url: str, body: bytes, kind: str = Feed.Kind.AUTO):
    feed, _ = Feed.objects.get_or_create(url=url, defaults={"kind": kind})
    return ingest_document(body, url, feed)


def arxiv_rss_body(shared_feed, version: int = 1, title: str = "") -> bytes:
    body = (
        shared_feed(RSS_LG)
        .read_bytes()
        .replace(f"oai:arXiv.org:{REAL_ID}v1".encode(), f"oai:arXiv.org:{REAL_ID}v{version}".encode())
    )
    return body.replace(REAL_TITLE.encode(), title.encode()) if title else body


def stored_text(arxiv_id: str = REAL_ID) -> tuple:
    row = Paper.objects.get(arxiv_id=arxiv_id)
    return row.title, row.abstract[:40], row.authors[:2], row.categories[:1], row.version, row.text_from_arxiv


def test_an_rss_entry_linking_an_arxiv_id_changes_nothing_arxiv_set(shared_feed):
    """The reported attack: a generic entry linking .../abs/<id>v9 overwrote the real paper."""
    ingest_as(ARXIV_RSS_URL, shared_feed(RSS_LG).read_bytes())
    real = stored_text()
    assert real[0] == REAL_TITLE and real[4:] == (1, True)

    report = ingest_as("https://aggregator.example/feed", generic_rss(impostor_item()))
    assert not report.failed
    assert stored_text() == real
    # ...so arXiv's genuine v2 is still taken, and its own v1 again changes nothing.
    ingest_as(ARXIV_RSS_URL, arxiv_rss_body(shared_feed, version=2, title="Focus Session, revised"))
    assert stored_text()[0::4] == ("Focus Session, revised", 2)
    assert ingest_as(ARXIV_RSS_URL, shared_feed(RSS_LG).read_bytes()).counts.updated == 0


def test_a_paper_another_feed_created_is_replaced_by_arxiv_s_first_sighting(shared_feed):
    report = ingest_as("https://aggregator.example/feed", generic_rss(impostor_item()))
    assert report.counts.new == 1
    # The paper exists (it may be recommended) but its version is not the impostor's 9.
    assert stored_text() == ("Buy cheap pills", "Not the abstract.", ["Mallory"], ["spam"], 1, False)
    assert Paper.objects.get().url == f"https://arxiv.org/abs/{REAL_ID}"

    ingest_as(ARXIV_RSS_URL, shared_feed(RSS_LG).read_bytes())
    title, abstract, authors, categories, version, from_arxiv = stored_text()
    assert (title, authors, categories, version, from_arxiv) == (
        REAL_TITLE,
        ["Muhammad Shafique", "Abdul Basit"],
        ["cs.LG"],
        1,
        True,
    )
    assert abstract.startswith("This work presents a multi-layered")
    assert Paper.objects.count() == 3


def test_a_second_non_arxiv_feed_neither_raises_the_version_nor_replaces_the_first_one_s_text():
    hf_day = json.dumps(
        [
            {
                "paper": {
                    "id": REAL_ID,
                    "title": "HF title",
                    "summary": "HF abstract.",
                    "upvotes": 5,
                    "githubRepo": "https://github.com/lab/code",
                }
            }
        ]
    ).encode()
    ingest_as("https://huggingface.co/api/daily_papers", hf_day)
    ingest_as("https://aggregator.example/feed", generic_rss(impostor_item()))
    row = Paper.objects.get()
    assert (row.title, row.abstract, row.version, row.upvotes, row.code_url) == (
        "HF title",
        "HF abstract.",
        1,
        5,
        "https://github.com/lab/code",
    )
    assert row.authors == ["Mallory"] and row.categories == ["spam"]  # filled: the first feed had none


def test_other_feeds_still_add_upvotes_and_links_to_a_paper_arxiv_set(shared_feed):
    ingest_as(ARXIV_RSS_URL, shared_feed(RSS_LG).read_bytes())
    hf_day = json.dumps(
        [
            {
                "paper": {
                    "id": REAL_ID,
                    "title": "HF title",
                    "upvotes": 42,
                    "githubRepo": "https://github.com/lab/code",
                    "projectPage": "https://lab.example/project",
                    "publishedAt": "2031-01-01T00:00:00Z",
                }
            }
        ]
    ).encode()
    assert ingest_as("https://huggingface.co/api/daily_papers", hf_day).counts.updated == 1
    row = Paper.objects.get(arxiv_id=REAL_ID)
    assert (row.title, row.upvotes, row.code_url, row.project_url) == (
        REAL_TITLE,
        42,
        "https://github.com/lab/code",
        "https://lab.example/project",
    )


def test_a_copy_of_an_arxiv_feed_served_from_another_host_is_not_arxiv(shared_feed):
    """The content says rss.arxiv.org (channel link, oai ids) and is detected as arXiv's: not enough."""
    body = arxiv_rss_body(shared_feed, version=9, title="Impostor title")
    report = ingest_as("https://mirror.example/rss/cs.LG", body)
    assert not report.failed
    assert stored_text()[0::4] == ("Impostor title", 1)
    assert stored_text()[5] is False
    ingest_as(ARXIV_RSS_URL, shared_feed(RSS_LG).read_bytes())
    assert stored_text()[0::4] == (REAL_TITLE, 1)


def test_a_local_file_is_arxiv_s_only_when_an_operator_gave_its_feed_an_arxiv_kind(shared_feed):
    ingest_feed(Feed.objects.create(url=str(shared_feed(RSS_LG))))
    assert stored_text()[5] is False
    declared = Feed.objects.create(url=f"file://{shared_feed(RSS_AI)}", kind=Feed.Kind.ARXIV_RSS)
    ingest_feed(declared)
    assert set(Paper.objects.filter(sources__feed=declared).values_list("text_from_arxiv", flat=True)) == {True}


@pytest.mark.parametrize(
    "source, kind, declared, trusted",
    [
        (ARXIV_RSS_URL, Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, True),
        ("https://RSS.arXiv.org/atom/cs.AI", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, True),
        (ARXIV_API_URL, Feed.Kind.ARXIV_API, Feed.Kind.ARXIV_API, True),
        ("https://arxiv.org/a/lee_a_1.atom", Feed.Kind.ARXIV_API, Feed.Kind.AUTO, True),
        (ARXIV_RSS_URL, Feed.Kind.RSS, Feed.Kind.RSS, False),  # arXiv's host, but read as a generic feed
        ("https://huggingface.co/api/daily_papers", Feed.Kind.HF_DAILY, Feed.Kind.AUTO, False),
        ("https://rss.arxiv.org@evil.example/rss/cs.LG", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, False),
        ("https://evil.example/rss.arxiv.org/cs.LG", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, False),
        ("https://evil.example/?u=https://rss.arxiv.org", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, False),
        ("https://rss.arxiv.org.evil.example/rss/cs.LG", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, False),
        ("https://notarxiv.org/rss/cs.LG", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, False),
        ("https://[::1/rss", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, False),  # urlsplit raises on this
        ("ftp://rss.arxiv.org/rss/cs.LG", Feed.Kind.ARXIV_RSS, Feed.Kind.ARXIV_RSS, False),
        ("seeds/cs.LG.xml", Feed.Kind.ARXIV_RSS, Feed.Kind.ARXIV_RSS, True),
        ("file:///srv/captures/cs.LG.xml", Feed.Kind.ARXIV_API, Feed.Kind.ARXIV_API, True),
        ("seeds/cs.LG.xml", Feed.Kind.ARXIV_RSS, Feed.Kind.AUTO, False),  # detected from content only
        ("bench://generated", Feed.Kind.ARXIV_RSS, Feed.Kind.ARXIV_RSS, False),
    ],
)
def test_only_arxiv_s_own_hosts_and_declared_local_captures_speak_for_arxiv(source, kind, declared, trusted):
    assert speaks_for_arxiv(source, kind, declared) is trusted


def test_an_arxiv_api_entry_with_a_version_of_10_to_the_30_keeps_the_stored_version(shared_feed):
    ingest_as(ARXIV_API_URL, shared_feed(API_20).read_bytes())
    first = parse_document(shared_feed(API_20).read_bytes()).papers[0]
    huge = (
        shared_feed(API_20)
        .read_bytes()
        .replace(f"{first.arxiv_id}v1".encode(), f"{first.arxiv_id}v1{'0' * 30}".encode())
    )
    report = ingest_as(ARXIV_API_URL, huge)
    assert (report.failed, report.trimmed) == (False, 1)
    assert "version outside 1 to 32,767 ignored" in report.error
    assert Paper.objects.get(arxiv_id=first.arxiv_id).version == 1


def test_a_10_mb_title_grows_neither_the_row_nor_the_feed_s_record_nor_the_pages(client, caplog):
    now = format_datetime(timezone.now())
    body = generic_rss(
        f"<item><title>{'Big ' * (BIG // 4)}</title><guid>https://aggregator.example/1</guid>"
        f"<description>{'word ' * 200_000}</description><pubDate>{now}</pubDate></item>",
        f"<item><title>Small</title><guid>https://aggregator.example/2</guid><pubDate>{now}</pubDate></item>",
    )
    with FeedServer() as server:
        server.routes["/feed"] = Route(body=body)
        feed = Feed.objects.create(url=server.url("/feed"))
        with caplog.at_level("INFO", logger="digest.papers.ingestion"):
            report = ingest_feed(feed)
    feed.refresh_from_db()
    assert (report.counts.new, report.trimmed, feed.last_new) == (2, 1, 2)
    assert "skipped=0 trimmed=1 errors=2" in report.summary()
    assert f"trimmed 1 entry: title cut to {MAX_TITLE_CHARS:,} characters" in feed.last_error
    assert f"trimmed 1 entry: abstract cut to {MAX_ABSTRACT_CHARS:,} characters" in feed.last_error
    (event,) = [r for r in caplog.records if getattr(r, "event", "") == "ingest.feed"]
    assert event.trimmed == 1
    big = Paper.objects.get(guid="https://aggregator.example/1")
    assert (len(big.title), len(big.abstract)) == (MAX_TITLE_CHARS, MAX_ABSTRACT_CHARS)
    for page in ("/", "/papers/"):
        response = client.get(page)
        assert response.status_code == 200
        assert "Big Big" in response.content.decode()
        assert len(response.content) < 100_000, (page, len(response.content))


def test_an_entry_with_a_100_kb_id_is_skipped_and_the_rest_stored():
    report = ingest_as(
        "https://aggregator.example/feed",
        generic_rss(
            impostor_item(link="https://aggregator.example/" + "x" * 100_000),
            impostor_item(link="https://aggregator.example/ok", title="Kept"),
        ),
    )
    assert (report.counts.new, report.counts.skipped) == (1, 1)
    assert "skipped 1 entry with an id over 1,000 characters" in report.error
    assert Paper.objects.get().title == "Kept"


HOSTILE_UPVOTES = [
    "9223372036854775808",
    "2147483648",
    "1" + "0" * 5000,
    "-5",
    '"12k"',
    "null",
    "1e400",
    "NaN",
    "-Infinity",
    "true",
    "{}",
    "12.5",
]


def test_hostile_numbers_are_clamped_or_ignored_and_every_item_stored():
    """2^63 was an OverflowError that lost the whole day; on PostgreSQL anything past 2^31-1 was."""
    items = ",".join(
        '{"paper": {"id": "2607.%05d", "title": "Paper %d", "upvotes": %s}}' % (n, n, raw)  # noqa: UP031 - JSON braces, no f-string
        for n, raw in enumerate(HOSTILE_UPVOTES)
    )
    report = ingest_as("https://huggingface.co/api/daily_papers", f"[{items}]".encode())
    assert not report.failed
    assert report.counts.new == len(HOSTILE_UPVOTES)
    assert report.trimmed == len(HOSTILE_UPVOTES) - 2  # null and 12.5 are fine
    stored = dict(Paper.objects.values_list("title", "upvotes"))
    assert [stored[f"Paper {n}"] for n in range(len(HOSTILE_UPVOTES))] == [
        MAX_COUNT,
        MAX_COUNT,
        MAX_COUNT,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        12,
    ]
    # A real count later still raises a clamped one's... and never lowers the maximum.
    again = '[{"paper": {"id": "2607.00003", "title": "Paper 3", "upvotes": 7}}]'
    ingest_as("https://huggingface.co/api/daily_papers", again.encode())
    assert Paper.objects.get(title="Paper 3").upvotes == 7


def test_nul_bytes_control_characters_and_surrogates_are_stored_without_them():
    """PostgreSQL refuses NUL in text and jsonb; no driver encodes a lone surrogate."""
    rss_body = generic_rss(
        "<item><title>Null\x00title</title><guid>https://aggregator.example/p/\x001</guid>"
        "<link>https://aggregator.example/p/1</link><description>a&#0;b\x1bc&#xD800;d</description>"
        "<author>Ann\x00Lee</author><category>m\x00l</category></item>"
    )
    json_body = (
        b'[{"paper": {"id": "hf\\u0000\\ud800id", "title": "T\\u0000i\\ud800tle", "summary": "a\\udfffb",'
        b' "authors": [{"name": "Ann\\u0000 Lee\\ud83d"}], "githubRepo": "https://github.com/a\\u0000/b"}}]'
    )
    assert ingest_as("https://aggregator.example/feed", rss_body).counts.new == 1
    assert ingest_as("https://huggingface.co/api/daily_papers", json_body).counts.new == 1
    control = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
    for row in Paper.objects.all():
        texts = [row.guid, row.title, row.abstract, row.url, row.code_url, *row.authors, *row.categories]
        assert not any(control.search(text) for text in texts), texts
    assert Paper.objects.filter(title="Null title", abstract="a b c\ufffdd").exists()


def test_dates_out_of_range_are_stored_as_no_date_and_the_pages_still_render(client):
    body = generic_rss(
        "<item><title>Year one</title><guid>https://aggregator.example/1</guid>"
        "<pubDate>Mon, 01 Jan 0001 00:00:00 GMT</pubDate></item>",
        "<item><title>Year 99999</title><guid>https://aggregator.example/2</guid>"
        "<pubDate>Mon, 01 Jan 99999 00:00:00 GMT</pubDate></item>",
        "<item><title>Year 2999</title><guid>https://aggregator.example/3</guid>"
        "<pubDate>Tue, 01 Jan 2999 00:00:00 GMT</pubDate></item>",
    )
    report = ingest_as("https://aggregator.example/feed", body)
    assert (report.counts.new, report.trimmed) == (3, 2)
    assert list(Paper.objects.values_list("published", flat=True)) == [None, None, None]
    assert client.get("/archive/").status_code == 200 and client.get("/papers/").status_code == 200


def test_a_script_link_is_never_stored():
    body = generic_rss(
        "<item><title>T1</title><guid>urn:x:1</guid><link>javascript:alert(1)</link></item>",
        "<item><title>T2</title><guid>urn:x:2</guid><link>data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;</link></item>",
    )
    hf_day = json.dumps(
        [
            {
                "paper": {
                    "id": "2607.00009",
                    "title": "T3",
                    "githubRepo": "javascript:alert(1)",
                    "projectPage": "data:text/html,x",
                }
            }
        ]
    ).encode()
    ingest_as("https://aggregator.example/feed", body)
    ingest_as("https://huggingface.co/api/daily_papers", hf_day)
    for url, pdf_url, code_url, project_url in Paper.objects.values_list("url", "pdf_url", "code_url", "project_url"):
        assert all(
            link == "" or link.startswith(("https://", "http://")) for link in (url, pdf_url, code_url, project_url)
        )
    assert Paper.objects.count() == 3


def test_one_feed_s_error_text_is_bounded_and_printable(shared_feed):
    body = shared_feed("arxiv_api_atom_2026-04-12_idlist-abc_HTTP400_error.xml").read_bytes()
    body = body.replace(b"incorrect id format for abc", b"\x01" + b"y" * BIG)
    with FeedServer() as server:
        server.routes["/api"] = Route(body=body)
        feed = Feed.objects.create(url=server.url("/api"))
        report = ingest_feed(feed)
    feed.refresh_from_db()
    assert report.failed
    assert "arXiv API error: yyy" in feed.last_error and len(feed.last_error) <= MAX_LAST_ERROR_CHARS
    assert "\x01" not in feed.last_error


def test_a_validator_header_with_a_nul_is_not_stored_and_the_other_feeds_go_on(shared_feed):
    """PostgreSQL refuses the NUL: the update after the ingest raised out of ingest_all."""
    with FeedServer() as server:
        server.routes["/nul"] = Route(
            body=shared_feed(RSS_AI).read_bytes(), etag='"a\x00b"', last_modified="Mon, 27 Apr 2026\x00 04:00:01 GMT"
        )
        server.routes["/good"] = Route(body=shared_feed(RSS_LG).read_bytes(), etag='"good"')
        feeds = [Feed.objects.create(url=server.url("/nul")), Feed.objects.create(url=server.url("/good"))]
        reports = ingest_all(feeds)
    assert [r.failed for r in reports] == [False, False]
    assert list(Feed.objects.order_by("pk").values_list("etag", "last_modified")) == [("", ""), ('"good"', "")]
    assert Paper.objects.count() == 6


def minimal_rss(first: int, count: int, title: str = "Paper") -> bytes:
    """A feed of `count` entries holding only an id and a title, as a hostile feed would send."""
    items = "".join(
        f"<item><guid>urn:hostile:{n}</guid><title>{title} {n}</title></item>" for n in range(first, first + count)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Many</title>{items}</channel></rss>'.encode()


def test_a_feed_over_the_entry_cap_stores_the_first_entries_and_says_how_many_it_skipped(settings, caplog):
    settings.FEED_MAX_ENTRIES = 50
    elsewhere = Feed.objects.create(url="https://example.org/elsewhere")
    store_papers([ParsedPaper(guid="urn:kept", title="Stored before"), paper("2404.00001")], elsewhere)
    # The hostile feed announces a paper already stored past its cap, with another title.
    store_papers([ParsedPaper(guid="urn:hostile:60", title="Stored before too")], elsewhere)
    before = {row.pk: (row.title, row.last_changed) for row in Paper.objects.all()}
    with FeedServer() as server:
        server.routes["/many"] = Route(body=minimal_rss(0, 50 + 30))
        feed = Feed.objects.create(url=server.url("/many"))
        with caplog.at_level("INFO", logger="digest.papers.ingestion"):
            report = ingest_feed(feed)
    feed.refresh_from_db()

    assert not report.failed
    assert (report.counts.new, report.skipped_over_cap, report.counts.skipped) == (50, 30, 30)
    assert "skipped=30 over_cap=30" in report.summary()
    stored = set(Paper.objects.filter(guid__startswith="urn:hostile:").values_list("guid", flat=True))
    assert stored == {f"urn:hostile:{n}" for n in range(50)} | {"urn:hostile:60"}
    assert {row.pk: (row.title, row.last_changed) for row in Paper.objects.filter(pk__in=before)} == before
    assert not PaperSource.objects.filter(feed=feed, paper__pk__in=before).exists()
    assert PaperSource.objects.filter(feed=feed).count() == 50
    # The feed's status in the admin and the dashboard shows it, as any partly lost poll.
    message = "80 entries, more than FEED_MAX_ENTRIES (50): read the first 50, skipped the other 30"
    assert message in feed.last_error
    assert (feed.last_new, feed.last_skipped, feed.failures_in_a_row) == (50, 30, 1)
    (warning,) = [r for r in caplog.records if getattr(r, "event", "") == "ingest.over_cap"]
    assert warning.levelname == "WARNING"
    assert (warning.url, warning.entries, warning.cap, warning.skipped) == (feed.url, 80, 50, 30)
    (event,) = [r for r in caplog.records if getattr(r, "event", "") == "ingest.feed"]
    assert (event.new, event.skipped, event.over_cap) == (50, 30, 30)


def test_a_feed_at_exactly_the_entry_cap_stores_every_entry(settings):
    settings.FEED_MAX_ENTRIES = 50
    feed = Feed.objects.create(url="https://example.org/at-cap")
    report = ingest_document(minimal_rss(0, 50), feed.url, feed)
    assert (report.counts.new, report.skipped_over_cap, report.counts.skipped, report.error) == (50, 0, 0, "")
    assert "over_cap" not in report.summary()
    assert Paper.objects.count() == 50


def test_a_json_feed_over_the_entry_cap_stores_its_first_items(settings, shared_feed):
    settings.FEED_MAX_ENTRIES = 3
    report = ingest_source(str(shared_feed(HF_5)))
    assert (report.counts.new, report.skipped_over_cap) == (3, 2)
    assert "5 items, more than FEED_MAX_ENTRIES (3)" in report.error
    first_three = [item["paper"]["id"] for item in json.loads(shared_feed(HF_5).read_bytes())[:3]]
    assert sorted(Paper.objects.values_list("arxiv_id", flat=True)) == sorted(first_three)


def test_every_capture_is_under_the_default_entry_cap(settings, shared_feed):
    largest = "arxiv_api_atom_2024-12-26_search-all-retrieval-augmented-generation_max5000_1314entries.xml"
    parsed = parse_document(shared_feed(largest).read_bytes(), max_entries=settings.FEED_MAX_ENTRIES)
    assert (len(parsed.papers), parsed.over_cap) == (1314, 0)
