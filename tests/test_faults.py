"""Faults the quick suite can stage: a mail server that refuses for a while, feeds that misbehave
all in one run, a Redis that stops under the signup page, a database that drops our connection
mid-send.

The long runs (10,000 digests with SIGKILLed workers, racing dispatchers, Redis and PostgreSQL
restarts) are bench/stress_digests.py, run by `make stress`.
"""

import logging
import threading
import time
import tracemalloc

import pytest
import redis
import time_machine
from django.db import connection

from digest.delivery.claims import due_retries
from digest.delivery.dispatch import dispatch_due
from digest.delivery.sending import send_delivery_chunk
from digest.models import Delivery, Feed, Paper
from digest.papers.ingestion import ingest_all
from subscribers.models import Subscriber
from tests.support.digest_samples import NOW, fresh, queued_digest
from tests.support.feed_server import FeedServer, Route
from tests.support.servers import ThrowawayRedis
from tests.support.signup import form
from tests.support.smtp_sink import SmtpSink

RSS_AI = "arxiv_rss2_2026-04-27_cs.AI_trimmed_3items.xml"
RSS_LG = "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml"


# --- the mail server -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_server_refusing_with_421_and_451_for_a_while_gets_the_digest_once_it_answers_250(sink, papers, settings):
    settings.SEND_MAX_ATTEMPTS = 6
    sink.script("ada@example.org", "421 4.3.2 Service shutting down", "451 4.7.1 Greylisted", "451 4.3.0 Try later")
    with time_machine.travel(NOW, tick=False) as clock:
        delivery = queued_digest("ada@example.org", papers)
        outcomes = [send_delivery_chunk([delivery.id])]
        while fresh(delivery).status == Delivery.Status.QUEUED:
            clock.move_to(fresh(delivery).next_attempt_at)
            outcomes.append(send_delivery_chunk(due_retries(fresh(delivery).next_attempt_at)))

    done = fresh(delivery)
    assert [o.retrying for o in outcomes] == [1, 1, 1, 0] and outcomes[-1].sent == 1
    assert (done.status, done.attempts, done.last_error) == (Delivery.Status.SENT, 4, "")
    assert sink.count_for("ada@example.org") == 1
    assert Subscriber.objects.get(id=done.subscriber_id).bounce_count == 0  # 4xx is never a bounce


@pytest.mark.django_db
def test_one_chunk_with_refusals_a_greylist_and_a_dropped_connection_counts_each_as_designed(sink, papers):
    emails = ["ok1@example.org", "gone@example.org", "grey@example.org", "dropped@example.org", "ok2@example.org"]
    deliveries = {email: queued_digest(email, papers) for email in emails}
    sink.always("gone@example.org", "550 5.1.1 No such user")
    sink.script("grey@example.org", "451 4.7.1 Greylisted")
    sink.script("dropped@example.org", "disconnect")

    result = send_delivery_chunk([d.id for d in deliveries.values()])

    assert (result.sent, result.failed, result.retrying) == (2, 1, 2)
    assert sink.per_recipient() == {"ok1@example.org": 1, "ok2@example.org": 1}
    statuses = {email: fresh(d).status for email, d in deliveries.items()}
    assert statuses == {
        "ok1@example.org": "sent",
        "gone@example.org": "failed",
        "grey@example.org": "queued",
        "dropped@example.org": "queued",
        "ok2@example.org": "sent",
    }
    assert Subscriber.objects.get(email="gone@example.org").bounce_count == 1
    assert Subscriber.objects.get(email="grey@example.org").bounce_count == 0

    later = max(fresh(deliveries[e]).next_attempt_at for e in ("grey@example.org", "dropped@example.org"))
    with time_machine.travel(later, tick=False):
        again = send_delivery_chunk(due_retries(later))
    assert (again.sent, again.failed) == (2, 0)
    assert sink.per_recipient() == {e: 1 for e in emails if e != "gone@example.org"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_digest_accepted_while_the_database_drops_our_connection_is_recorded_once_it_is_back(
    on_postgres, papers, settings, caplog
):
    delivery = queued_digest("ada@example.org", papers)
    with SmtpSink() as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        sink.hold()
        results = []
        sender = threading.Thread(target=lambda: results.append(send_delivery_chunk([delivery.id])))
        sender.start()
        deadline = time.monotonic() + 20
        while sink.held_now < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.held_now == 1, "the message never reached the sink"
        # What a PostgreSQL restart does to a worker: its session is ended under it.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1
        with caplog.at_level(logging.WARNING, logger="digest.delivery.sending"):
            sink.release()
            sender.join(30)
        assert sink.count_for("ada@example.org") == 1

    assert results and results[0].sent == 1
    assert fresh(delivery).status == Delivery.Status.SENT  # not left in `sending`, to be sent again
    assert "database unavailable while recording a delivery" in caplog.text


# --- feeds -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_kind_of_bad_feed_in_one_run_fails_alone_in_bounded_time_and_the_good_ones_are_stored(
    shared_feed, settings
):
    settings.FEED_TIMEOUT_SECONDS = 1
    settings.FEED_HOST_DELAY_SECONDS = 0
    settings.FEED_MAX_BYTES = 2 * 1024 * 1024
    with FeedServer() as server:
        server.routes.update(
            {
                "/good-first": Route(body=shared_feed(RSS_AI).read_bytes()),
                "/hangs": Route(body=b"x", delay=60),
                "/slow": Route(body=shared_feed(RSS_LG).read_bytes(), delay=0.4),  # slow but within the timeout
                "/error": Route(status=500, body=b"Internal Server Error"),
                "/html": Route(
                    body=b"<!DOCTYPE html><html><body>Please sign in</body></html>",
                    headers={"Content-Type": "text/html"},
                ),
                "/huge": Route(drip_bytes=50 * 1024 * 1024),
                "/loop": Route(redirect_to="/loop"),
            }
        )
        paths = ["/good-first", "/hangs", "/slow", "/error", "/html", "/huge", "/loop"]
        feeds = [Feed.objects.create(url=server.url(path)) for path in paths]
        started = time.monotonic()
        reports = ingest_all(feeds)
        seconds = time.monotonic() - started

    failed = {path: report.error for path, report in zip(paths, reports, strict=True) if report.failed}
    assert set(failed) == {"/hangs", "/error", "/html", "/huge", "/loop"}
    assert "no answer within 1 s" in failed["/hangs"]
    assert "HTTP 500" in failed["/error"]
    assert "not a feed: got an HTML page" in failed["/html"]
    assert "more than FEED_MAX_BYTES" in failed["/huge"]
    assert "redirects" in failed["/loop"]
    assert seconds < 15  # each bad feed costs at most about its timeout
    assert Paper.objects.count() == 6  # both good feeds, whole
    for feed in Feed.objects.all():
        assert bool(feed.last_error) == (feed.url.rsplit("/", 1)[1] in {p.strip("/") for p in failed})


@pytest.mark.django_db
def test_a_50_mb_feed_body_is_refused_within_bounded_memory(settings):
    settings.FEED_TIMEOUT_SECONDS = 10
    settings.FEED_HOST_DELAY_SECONDS = 0
    settings.FEED_MAX_BYTES = 1024 * 1024
    with FeedServer() as server:
        server.routes["/huge"] = Route(drip_bytes=50 * 1024 * 1024)
        server.routes["/declared"] = Route(body=b"x" * (50 * 1024 * 1024))
        feeds = [Feed.objects.create(url=server.url("/huge")), Feed.objects.create(url=server.url("/declared"))]
        tracemalloc.start()
        try:
            reports = ingest_all(feeds)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert all(r.failed and "FEED_MAX_BYTES" in r.error for r in reports)
    # Reading stops just past the limit: the peak is a few times FEED_MAX_BYTES, never 50 MB.
    assert peak < 6 * 1024 * 1024, peak


# --- Redis stops under the signup page ------------------------------------------------------------


@pytest.fixture
def throwaway_redis():
    with ThrowawayRedis() as server:
        yield server


@pytest.mark.django_db(transaction=True)
def test_signup_keeps_answering_when_redis_stops_and_emails_once_it_is_back(
    client, settings, throwaway_redis, broker_and_cache_on, caplog
):
    broker_and_cache_on(throwaway_redis.url(7))
    settings.SIGNUP_RATE_PER_IP = 1000
    queue = redis.Redis.from_url(throwaway_redis.url(7))

    assert client.post("/", form(email="before@example.org")).status_code == 302
    assert queue.llen("celery") == 1  # the confirmation email, queued for a worker

    throwaway_redis.stop()
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        during = client.post("/", form(email="during@example.org"))
        seconds = time.monotonic() - started
    assert during.status_code == 302 and during["Location"] == "/check-your-inbox/"
    assert seconds < 10
    assert "rate limit cache unavailable" in caplog.text  # degraded: the limit is not enforced
    assert "could not queue subscribers.send_confirmation" in caplog.text
    pending = Subscriber.objects.get(email="during@example.org")
    assert pending.status == Subscriber.Status.PENDING
    assert pending.confirmation_sent_at is None  # released, so that the next attempt sends

    throwaway_redis.start()
    queue = redis.Redis.from_url(throwaway_redis.url(7))
    assert client.post("/", form(email="during@example.org")).status_code == 302
    assert queue.llen("celery") == 1  # Redis came back empty; the retried signup queued its email
    assert Subscriber.objects.filter(email="during@example.org").count() == 1


# --- dispatchers racing ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_over_overdue_slots_create_one_delivery_per_subscriber(on_postgres, settings):
    """Slots days overdue (e.g. after an outage): a dispatcher that listed them before the other
    moved them must not claim them again for today's period."""
    from datetime import timedelta

    from django.db import connections
    from django.utils import timezone

    settings.DIGEST_CHUNK_SIZE = 50
    now = timezone.now()
    Subscriber.objects.bulk_create(
        Subscriber(
            email=f"late{n}@example.org", status=Subscriber.Status.ACTIVE, next_delivery_at=now - timedelta(days=3)
        )
        for n in range(600)
    )
    start = threading.Barrier(2)
    created: list[int] = []

    def dispatcher() -> None:
        try:
            start.wait()
            created.extend(dispatch_due(now, queue=False))
        finally:
            connections.close_all()

    racers = [threading.Thread(target=dispatcher) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(120)

    assert len(created) == 600
    assert Delivery.objects.count() == 600
    assert set(Delivery.objects.values_list("period", flat=True)) == {(now - timedelta(days=3)).date().isoformat()}
