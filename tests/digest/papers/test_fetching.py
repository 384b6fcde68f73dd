import time

import pytest

from digest.papers.fetching import FetchError, fetch, wait_for_host
from tests.support.feed_server import FeedServer, Route

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


@pytest.fixture
def server(settings):
    settings.FEED_HOST_DELAY_SECONDS = 0
    settings.FEED_TIMEOUT_SECONDS = 2
    settings.FEED_USER_AGENT = "Paperboy-test/1.0 (+http://testserver)"
    with FeedServer() as running:
        yield running


def test_it_fetches_a_feed_with_its_validators_and_our_user_agent(server):
    server.routes["/feed"] = Route(
        body=FEED,
        etag='"v1"',
        last_modified="Mon, 27 Apr 2026 04:00:01 GMT",
        headers={"Content-Type": "application/rss+xml"},
    )
    result = fetch(server.url("/feed"))
    assert (result.status, result.body, result.not_modified) == (200, FEED, False)
    assert (result.etag, result.last_modified) == ('"v1"', "Mon, 27 Apr 2026 04:00:01 GMT")
    assert result.content_type == "application/rss+xml"
    path, headers = server.requests[0]
    assert headers["User-Agent"] == "Paperboy-test/1.0 (+http://testserver)"
    assert "If-None-Match" not in headers


def test_it_sends_the_stored_validators_and_reads_304_as_not_modified(server):
    server.routes["/feed"] = Route(body=FEED, etag='"v1"')
    result = fetch(server.url("/feed"), etag='"v1"', last_modified="Mon, 27 Apr 2026 04:00:01 GMT")
    assert (result.status, result.not_modified, result.body) == (304, True, b"")
    assert result.etag == '"v1"'
    headers = server.requests[0][1]
    assert headers["If-None-Match"] == '"v1"'
    assert headers["If-Modified-Since"] == "Mon, 27 Apr 2026 04:00:01 GMT"


def test_it_gives_up_on_a_server_that_hangs(server, settings):
    settings.FEED_TIMEOUT_SECONDS = 0.5
    server.routes["/hang"] = Route(body=FEED, delay=30)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"no answer within 0.5 s"):
        fetch(server.url("/hang"))
    assert time.monotonic() - started < 5


def test_it_refuses_a_declared_oversize_body(server, settings):
    settings.FEED_MAX_BYTES = 1000
    server.routes["/big"] = Route(body=b"x" * 5000)
    with pytest.raises(FetchError, match="more than FEED_MAX_BYTES"):
        fetch(server.url("/big"))


def test_it_stops_reading_an_undeclared_oversize_body(server, settings):
    settings.FEED_MAX_BYTES = 1024 * 1024
    server.routes["/endless"] = Route(drip_bytes=50 * 1024 * 1024)
    started = time.monotonic()
    with pytest.raises(FetchError, match="stopped reading"):
        fetch(server.url("/endless"))
    assert time.monotonic() - started < 10


def test_it_reports_an_http_error(server):
    server.routes["/broken"] = Route(status=500, body=b"oops")
    with pytest.raises(FetchError, match=r"HTTP 500 Internal Server Error"):
        fetch(server.url("/broken"))


def test_it_stops_following_a_redirect_loop(server):
    server.routes["/loop"] = Route(redirect_to="/loop")
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch(server.url("/loop"))
    assert len(server.requests) == 6


def test_it_follows_a_redirect(server):
    server.routes["/old"] = Route(redirect_to="/feed")
    server.routes["/feed"] = Route(body=FEED)
    assert fetch(server.url("/old")).body == FEED


def test_it_reports_a_refused_connection(settings):
    settings.FEED_HOST_DELAY_SECONDS = 0
    with FeedServer() as stopped:
        url = stopped.url("/feed")
    with pytest.raises(FetchError, match="cannot connect"):
        fetch(url)


def test_it_reads_local_paths_and_file_urls(shared_feed):
    path = shared_feed("arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml")
    assert fetch(str(path)).body == path.read_bytes()
    assert fetch(path.as_uri()).body == path.read_bytes()


def test_it_reads_a_project_relative_path_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fetch("seeds/trending-papers.xml").body.startswith(b"<?xml")


def test_it_reports_a_missing_file_and_an_unknown_scheme(tmp_path):
    with pytest.raises(FetchError, match="no such file"):
        fetch(str(tmp_path / "missing.xml"))
    with pytest.raises(FetchError, match="unsupported address"):
        fetch("ftp://example.com/feed.xml")


def test_it_waits_between_two_requests_to_the_same_host(settings):
    settings.FEED_HOST_DELAY_SECONDS = 0.3
    wait_for_host("http://polite.example/a")
    started = time.monotonic()
    wait_for_host("http://polite.example/b")
    wait_for_host("http://other.example/c")
    assert 0.25 < time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "etag, last_modified",
    [('"a\x00b"', "Mon, 27 Apr 2026 04:00:01 GMT\x00"), ('"' + "e" * 600 + '"', "M" * 200), ('"\x7f"', "\x1b[31m")],
)
def test_a_validator_the_database_would_refuse_or_cut_is_dropped(server, etag, last_modified):
    server.routes["/feed"] = Route(body=FEED, etag=etag, last_modified=last_modified)
    result = fetch(server.url("/feed"))
    assert (result.body, result.etag, result.last_modified) == (FEED, "", "")


def test_a_printable_validator_that_fits_is_kept(server):
    server.routes["/feed"] = Route(
        body=FEED, etag='W/"' + "e" * 400 + '"', last_modified="Mon, 27 Apr 2026 04:00:01 GMT"
    )
    result = fetch(server.url("/feed"))
    assert (len(result.etag), result.last_modified) == (404, "Mon, 27 Apr 2026 04:00:01 GMT")
