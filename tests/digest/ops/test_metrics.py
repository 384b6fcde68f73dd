"""/metrics: Prometheus reads what every worker wrote, and only operators and the scraper may."""

import time
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

import digest.ops.access
from config.celery import queue
from digest.delivery.bounces import record_report
from digest.delivery.chunk_timing import chunk_tally
from digest.delivery.refusal_alarm import tally
from digest.delivery.sending import send_delivery_chunk
from digest.models import Candidate, Delivery, Feed, MatchRun, SendTally
from digest.papers.ingestion import ingest_feed
from mail.refusals import Refusal
from tests.support.digest_samples import NOW, queued_digest
from tests.support.feed_server import FeedServer, Route
from tests.support.servers import ThrowawayRedis

pytestmark = pytest.mark.django_db

TOKEN = "9b1d5c0e7a-metrics-token"
LATER = NOW + timedelta(minutes=3)


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed by name and labels."""
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_a_stranger_gets_a_404_and_no_figures(token):
    response = Client().get("/metrics")
    assert response.status_code == 404
    assert b"paperboy_" not in response.content


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer ", "", f"bearer  {TOKEN[1:]}"],
)
def test_a_wrong_token_gets_a_404(token, header):
    assert Client().get("/metrics", HTTP_AUTHORIZATION=header).status_code == 404


def test_no_token_configured_lets_no_header_in(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer None").status_code == 404


def test_a_logged_in_reader_who_is_not_staff_gets_a_404(token):
    client = Client()
    client.force_login(User.objects.create_user("reader", "reader@example.org", "pw"))
    assert client.get("/metrics").status_code == 404


def test_the_scraper_token_and_staff_both_read_it(token, client, staff):
    assert ("paperboy_broker_up", ()) in scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ("paperboy_broker_up", ()) in scrape(client)


def test_it_only_answers_reads(token):
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_after_a_real_send_it_counts_what_was_sent_failed_refused_and_bounced(token, sink, papers):
    """Five digests to a real SMTP server: two accepted, one address refused, one message
    refused; then one of the accepted ones bounces."""
    for number in range(3):
        queued_digest(f"reader{number}@example.org", papers)
    queued_digest("gone@example.org", papers)
    queued_digest("strict@example.org", papers)
    sink.always("gone@example.org", "550 5.1.1 No such user")
    sink.refuse_data("strict@example.org", "554 5.7.1 Message rejected as spam")

    with time_machine.travel(LATER, tick=False):
        result = send_delivery_chunk(list(Delivery.objects.order_by("id").values_list("id", flat=True)))
        assert (result.sent, result.failed, result.refused) == (3, 1, 1)
        bounced = Delivery.objects.get(subscriber__email="reader2@example.org")
        assert record_report(bounced, Refusal.RECIPIENT, "550 5.1.1 mailbox gone", source="dsn")
        figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    def digests(status):
        return figures[("paperboy_digests", (("status", status),))]

    assert [digests(s) for s in ("sent", "failed", "refused", "bounced", "queued")] == [2, 1, 1, 1, 0]
    assert figures[("paperboy_digests_sent_last_5m", ())] == 2
    assert figures[("paperboy_deliveries_waiting", (("status", "sending"),))] == 0
    # Sent three minutes after their slot: none within one minute, both within five.
    assert figures[("paperboy_digest_delay_seconds_bucket", (("le", "60.0"),))] == 0
    assert figures[("paperboy_digest_delay_seconds_bucket", (("le", "300.0"),))] == 2
    assert figures[("paperboy_digest_delay_seconds_gsum", ())] == pytest.approx(2 * 180)
    assert figures[("paperboy_refusal_window_tried", ())] == 5
    assert figures[("paperboy_refusal_window_refused", ())] == 1
    assert figures[("paperboy_candidates_stored", ())] == Candidate.objects.count() == 15
    assert figures[("paperboy_subscribers", (("status", "active"),))] == 5


def test_after_a_real_send_it_shows_how_long_each_chunk_took_and_its_digests(token, sink, papers):
    """Two chunks to a real SMTP server: two digests at full speed, then three that the server
    takes a quarter of a second each to accept (so that chunk took at least 0.75 s)."""
    quick = [queued_digest(f"quick{n}@example.org", papers).id for n in range(2)]
    slow = [queued_digest(f"slow{n}@example.org", papers).id for n in range(3)]
    walls = []
    with time_machine.travel(LATER, tick=False):
        for ids, delay in ((quick, 0.0), (slow, 0.25)):
            sink.data_delay = delay
            started = time.perf_counter()
            assert send_delivery_chunk(ids).sent == len(ids)
            walls.append(time.perf_counter() - started)
        figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    def within(seconds: str) -> float:
        return figures[("paperboy_send_chunk_duration_seconds_bucket", (("le", seconds),))]

    assert figures[("paperboy_send_chunk_duration_seconds_gcount", ())] == 2
    assert figures[("paperboy_send_chunk_digests", ())] == 5
    # Each chunk is timed inside the call the test timed around it.
    total = figures[("paperboy_send_chunk_duration_seconds_gsum", ())]
    assert 0.75 <= total <= sum(walls) + 0.002
    assert within("0.5") <= 1  # never the slow chunk
    if walls[0] <= 0.5:  # the quick chunk's call took under half a second, so did the chunk
        assert within("0.5") == 1
    assert within("300.0") == within("+Inf") == 2
    assert figures[("paperboy_send_chunk_seconds_last_5m", ())] == total


def test_chunk_durations_fill_every_bucket_they_fit_in_and_leave_the_window_after_a_day(token):
    with time_machine.travel(NOW, tick=False):
        tally(4, 0, chunk=chunk_tally(0.3, 4))
        tally(9, 0, chunk=chunk_tally(1.7, 9))
    with time_machine.travel(NOW - timedelta(hours=25), tick=False):
        tally(100, 0, chunk=chunk_tally(120.0, 100))
    assert SendTally.objects.count() == 2
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    buckets = {
        labels[0][1]: value
        for (name, labels), value in figures.items()
        if name == "paperboy_send_chunk_duration_seconds_bucket"
    }
    assert buckets == {
        "0.25": 0,
        "0.5": 1,
        "1.0": 1,
        "2.0": 2,
        "5.0": 2,
        "15.0": 2,
        "60.0": 2,
        "300.0": 2,
        "+Inf": 2,
    }
    assert figures[("paperboy_send_chunk_duration_seconds_gsum", ())] == pytest.approx(2.0)
    assert figures[("paperboy_send_chunk_digests", ())] == 13
    assert figures[("paperboy_send_chunk_seconds_last_5m", ())] == 0  # both ten minutes ago


def test_a_feed_that_keeps_failing_counts_each_poll_that_left_an_error(token, shared_feed):
    """A local server serves a feed cut off mid-entry, then an HTTP error, then a good feed."""
    with FeedServer() as server:
        feed = Feed.objects.create(url=server.url("/rss"), name="flaky")
        server.routes["/rss"] = Route(body=b"<rss><channel><item><title>cut off")
        assert "truncated" in ingest_feed(feed).error
        server.routes["/rss"] = Route(status=503, body=b"busy")
        assert ingest_feed(feed).failed
        failing = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        server.routes["/rss"] = Route(body=shared_feed("arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml").read_bytes())
        good = ingest_feed(feed)
        assert (good.error, good.counts.new) == ("", 3)
        recovered = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    flaky = (("feed", "flaky"),)
    assert failing[("paperboy_feed_errors_total", flaky)] == 2
    assert failing[("paperboy_feed_polls_total", flaky)] == 2
    assert failing[("paperboy_feed_consecutive_errors", flaky)] == 2
    assert failing[("paperboy_feed_failing", flaky)] == 1
    # The count stays (a counter: Prometheus's increase() sees two errors); the run of them ends.
    assert recovered[("paperboy_feed_errors_total", flaky)] == 2
    assert recovered[("paperboy_feed_polls_total", flaky)] == 3
    assert recovered[("paperboy_feed_consecutive_errors", flaky)] == 0
    assert recovered[("paperboy_feed_failing", flaky)] == 0


def test_digests_scheduled_more_than_a_day_ago_leave_the_window(token, sink, papers):
    queued_digest("ada@example.org", papers)
    with time_machine.travel(LATER, tick=False):
        send_delivery_chunk(list(Delivery.objects.values_list("id", flat=True)))
    with time_machine.travel(NOW + timedelta(hours=25), tick=False):
        figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert figures[("paperboy_digests", (("status", "sent"),))] == 0


def test_it_reports_each_feed_that_failed_and_the_match_runs(token):
    Feed.objects.create(url="https://good.example.org/rss", name="good", last_success_at=NOW, last_new=7)
    Feed.objects.create(url="https://bad.example.org/rss", name="bad", last_error="HTTP 503")
    Feed.objects.create(url="https://off.example.org/rss", name="off", enabled=False, last_error="HTTP 404")
    with time_machine.travel(NOW, tick=False):
        run = MatchRun.objects.create(papers=40, subscribers=900, chunks=2, chunks_done=2)
        MatchRun.objects.filter(id=run.id).update(finished_at=NOW + timedelta(seconds=42))
        MatchRun.objects.create(papers=3, subscribers=900, chunks=2, chunks_done=1)
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert figures[("paperboy_feed_failing", (("feed", "bad"),))] == 1
    assert figures[("paperboy_feed_failing", (("feed", "good"),))] == 0
    assert ("paperboy_feed_failing", (("feed", "off"),)) not in figures
    assert figures[("paperboy_feed_last_new_papers", (("feed", "good"),))] == 7
    assert figures[("paperboy_feed_last_success_timestamp_seconds", (("feed", "good"),))] == NOW.timestamp()
    assert figures[("paperboy_match_run_last_duration_seconds", ())] == 42
    assert figures[("paperboy_match_run_duration_seconds_bucket", (("le", "30.0"),))] == 0
    assert figures[("paperboy_match_run_duration_seconds_bucket", (("le", "60.0"),))] == 1
    assert figures[("paperboy_match_run_last_papers", ())] == 40
    assert figures[("paperboy_match_runs_unfinished", ())] == 1
    assert figures[("paperboy_match_runs_superseded", ())] == 0


def test_a_run_a_later_run_covers_counts_as_superseded_not_unfinished(token):
    # A run lost past the timeout (or one `matchpapers --all` overtook): the next run starts at or
    # before its first paper, so its remaining chunks store nothing and it never finishes.
    lost = MatchRun.objects.create(first_paper_id=100, last_paper_id=200, chunks=2, chunks_done=1)
    MatchRun.objects.create(first_paper_id=100, last_paper_id=300, chunks=2, chunks_done=0)
    with time_machine.travel(NOW, tick=False):
        figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert figures[("paperboy_match_runs_unfinished", ())] == 1  # the later run, under way
    assert figures[("paperboy_match_runs_superseded", ())] == 1
    assert MatchRun.objects.get(id=lost.id).finished_at is None


@pytest.mark.postgres
def test_on_postgresql_it_reports_each_main_tables_size_with_the_chunk_markers_and_vectors(token, on_postgres):
    figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    sizes = {
        dict(labels)["table"]: value for (name, labels), value in figures.items() if name == "paperboy_table_bytes"
    }
    assert set(sizes) == {
        "digest_candidate",
        "digest_delivery",
        "digest_matchchunk",
        "digest_matchrun",
        "digest_paper",
        "subscribers_subscriber",
        "digest_textvector",
    }
    assert all(size > 0 for size in sizes.values())  # an empty table's indexes take a page each


def test_elsewhere_no_table_sizes_are_reported(token, settings):
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("the PostgreSQL pass checks the sizes")
    figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert not [name for name, _ in figures if name == "paperboy_table_bytes"]


def test_queue_depth_is_each_redis_queue_length(token, broker_and_cache_on, settings):
    # A Redis of its own: a worker some other test runs on the shared one would take the tasks.
    with ThrowawayRedis() as redis:
        settings.REDIS_URL = redis.url()
        broker_and_cache_on(redis.url())
        for _ in range(3):
            queue("digest.send_digest_chunk", [1, 2])
        queue("digest.match_chunk", 1, [1])
        queue("digest.ingest_feeds")

        figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert figures[("paperboy_broker_up", ())] == 1
    depths = {name: figures[("paperboy_queue_depth", (("queue", name),))] for name in ("sending", "matching", "celery")}
    assert depths == {"sending": 3, "matching": 1, "celery": 1}
    assert figures[("paperboy_queue_unacknowledged", ())] == 0


def test_an_unreachable_redis_says_the_broker_is_down_and_leaves_the_depths_out(token, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert figures[("paperboy_broker_up", ())] == 0
    assert not [key for key in figures if key[0] == "paperboy_queue_depth"]


def test_in_process_tasks_have_empty_queues(token):
    figures = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert figures[("paperboy_queue_depth", (("queue", "sending"),))] == 0


def test_the_token_is_compared_in_constant_time(token, monkeypatch):
    from django.utils.crypto import constant_time_compare

    compared = []

    def spy(given, expected):
        compared.append((given, expected))
        return constant_time_compare(given, expected)

    monkeypatch.setattr(digest.ops.access, "constant_time_compare", spy)
    Client().get("/metrics", HTTP_AUTHORIZATION="Bearer guess")
    assert compared == [("guess", TOKEN)]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"/metrics?token={TOKEN}", {}),
        (f"/metrics?access_token={TOKEN}", {}),
        (f"/metrics?Authorization=Bearer+{TOKEN}", {}),
        ("/metrics", {"HTTP_X_METRICS_TOKEN": TOKEN}),
        ("/metrics", {"HTTP_PROXY_AUTHORIZATION": f"Bearer {TOKEN}"}),
        ("/metrics", {"HTTP_COOKIE": f"token={TOKEN}; sessionid={TOKEN}"}),
        ("/metrics/", {}),
        ("/metrics.txt", {}),
    ],
)
def test_the_token_anywhere_but_the_authorization_header_gets_the_same_404(token, path, headers):
    """A stranger probing with the token in the URL (where logs and proxies keep it) or in
    another header gets exactly the answer of a request without any token."""
    plain = Client().get("/metrics")
    response = Client().get(path, **headers)
    assert response.status_code == 404
    assert b"paperboy_" not in response.content
    assert response.content == plain.content


def test_a_head_request_without_the_token_gets_a_404(token):
    assert Client().head("/metrics").status_code == 404
    assert Client().head("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
