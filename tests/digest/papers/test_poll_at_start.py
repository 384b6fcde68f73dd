"""The poll `make run` does as it starts: the feeds whose host answers are polled at once; offline
it says so in one line, fetches nothing and costs no wait."""

import time
from io import StringIO

import pytest
from django.core.management import call_command

from digest.models import Feed, Paper
from tests.support.feed_server import FeedServer, Route
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db

RSS = "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml"


def pollfeeds() -> str:
    out = StringIO()
    call_command("pollfeeds", stdout=out)
    return out.getvalue()


@pytest.fixture
def server(shared_feed):
    with FeedServer() as running:
        running.routes["/rss/cs.LG"] = Route(body=shared_feed(RSS).read_bytes())
        yield running


def test_it_polls_the_configured_feeds_at_once(settings, server):
    settings.FEEDS = [server.url("/rss/cs.LG")]
    assert pollfeeds() == "Polled 1 feed: 3 new papers.\n"
    assert Paper.objects.count() == 3
    assert Feed.objects.get(url=server.url("/rss/cs.LG")).last_success_at is not None


def test_offline_it_says_so_in_one_line_and_fetches_nothing(settings):
    address = f"127.0.0.1:{free_port()}"  # nobody listens there
    settings.FEEDS = [f"http://{address}/rss/cs.LG", f"http://{address}/rss/cs.CV"]
    started = time.monotonic()
    assert pollfeeds() == (
        f"Offline: could not reach {address}; the digests use the seed papers until a poll succeeds.\n"
    )
    assert time.monotonic() - started < 2  # arXiv's pause between requests is not waited for
    assert list(Feed.objects.values_list("last_polled_at", flat=True)) == [None, None]


def test_a_host_that_does_not_answer_leaves_the_others_polled(settings, server):
    address = f"127.0.0.1:{free_port()}"
    settings.FEEDS = [server.url("/rss/cs.LG"), f"http://{address}/rss/cs.CV"]
    assert pollfeeds() == f"Polled 1 feed: 3 new papers; could not reach {address}.\n"


def test_a_feed_that_answers_with_an_error_is_counted_as_failed(settings, server):
    settings.FEEDS = [server.url("/rss/cs.LG"), server.url("/missing")]
    assert pollfeeds() == "Polled 2 feeds: 3 new papers, 1 failed (the admin's Feeds page says why).\n"


def test_the_seed_feed_is_never_polled_and_no_feeds_is_said_plainly(settings):
    call_command("loadseeds", stdout=StringIO())
    settings.FEEDS = []
    assert pollfeeds() == "No feeds to poll (FEEDS is empty): the digests use the seed papers.\n"
