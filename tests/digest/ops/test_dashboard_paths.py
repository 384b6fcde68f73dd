"""The dashboard counts every path papers arrive by: polled feeds, files given to `ingest`, and
the seeds, so that "feeds polled" never contradicts "new papers"."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from digest.models import Feed, Paper
from digest.ops import stats
from tests.support.feed_server import FeedServer, Route

pytestmark = pytest.mark.django_db

POLLED = "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml"
FILE = "arxiv_api_atom_2026-04-12_search-testing_max10_10entries.xml"


@pytest.fixture
def arrived_by_every_path(settings, shared_feed):
    """62 seed papers, 10 from a file given to `ingest`, 3 from a polled feed."""
    quiet = {"stdout": StringIO(), "stderr": StringIO()}
    call_command("loadseeds", **quiet)
    call_command("ingest", str(shared_feed(FILE)), **quiet)
    with FeedServer() as server:
        server.routes["/rss/cs.LG"] = Route(body=shared_feed(POLLED).read_bytes())
        settings.FEEDS = [server.url("/rss/cs.LG")]
        call_command("pollfeeds", **quiet)
    return Feed.objects.get(url=server.url("/rss/cs.LG"))


def test_new_papers_are_counted_by_the_path_they_came_in_by(arrived_by_every_path):
    totals = stats.totals()
    assert totals["papers_new_24h"] == Paper.objects.count() == 75
    assert (
        totals["papers_new_24h_from_feeds"],
        totals["papers_new_24h_from_files"],
        totals["papers_new_24h_from_seeds"],
    ) == (3, 10, 62)
    assert (totals["feeds_enabled"], totals["feeds_polled_24h"], totals["feeds_failing"]) == (1, 1, 0)


def test_the_chart_by_source_shows_the_seeds_and_the_ingested_files_too(arrived_by_every_path):
    series = stats.papers_per_day_by_source(days=2).series
    assert {name: values[-1] for name, values in series.items()} == {
        "Seed papers (offline demo)": 62,
        stats.INGESTED_FILES: 10,
        str(arrived_by_every_path): 3,
    }


def test_the_dashboard_says_where_the_new_papers_came_from(client, staff, arrived_by_every_path):
    html = client.get("/admin/dashboard/").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert "75 new papers in 24 h (3 from polled feeds, 10 from ingested files, 62 seed papers; 75 stored)" in text
    assert "1 feeds polled in 24 h (1 enabled, 0 failing)" in text


def test_a_paper_a_feed_also_announced_counts_once_for_the_feed(settings, shared_feed):
    quiet = {"stdout": StringIO(), "stderr": StringIO()}
    call_command("ingest", str(shared_feed(POLLED)), **quiet)
    with FeedServer() as server:
        server.routes["/rss/cs.LG"] = Route(body=shared_feed(POLLED).read_bytes())
        settings.FEEDS = [server.url("/rss/cs.LG")]
        call_command("pollfeeds", **quiet)
    assert stats.new_papers_by_path(timezone.now() - timedelta(hours=1)) == {
        "feeds": 3,
        "files": 0,
        "seeds": 0,
    }


def test_the_admin_is_branded_with_the_site_name_on_every_page(client, staff, settings):
    index = client.get("/admin/").content.decode()
    assert "<title>Papers, feeds, subscribers and their digests | Paperboy admin</title>" in index
    assert '<a href="/admin/">Paperboy administration</a>' in index
    dashboard = client.get("/admin/dashboard/").content.decode()
    assert "Dashboard | Paperboy admin" in dashboard
    client.logout()
    login = client.get("/admin/login/").content.decode()
    assert "Paperboy administration" in login
    for page in (index, login, dashboard):
        assert "Django administration" not in page and "Django site admin" not in page
