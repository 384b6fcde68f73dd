import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime

import pytest
import redis
from django.db import connection

from digest.delivery.refusal_alarm import tally
from digest.delivery.sending import send_delivery_chunk
from digest.models import Candidate, Delivery, Feed
from digest.ops.health import health
from subscribers.models import Subscriber
from tests.support.digest_samples import make_paper, make_subscriber, seed_papers
from tests.support.smtp_sink import SmtpSink


@pytest.fixture(autouse=True)
def details(settings, client):
    """These tests read the full report: they call as a probe holding HEALTHZ_TOKEN."""
    settings.HEALTHZ_TOKEN = "probe-token"
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer probe-token"


@pytest.fixture
def filesystem_broker(settings, tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_it_answers_200_with_the_filesystem_broker_writable(client, filesystem_broker):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"] == {
        "ok": True,
        "kind": "filesystem",
        "folder": str(filesystem_broker),
        "ms": body["broker"]["ms"],
    }
    assert body["last_ingest"] is None and body["last_dispatch"] is None
    assert list(filesystem_broker.iterdir()) == []  # the probe file is gone
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_it_reports_the_last_successful_ingest_and_the_last_digest_sent(client, filesystem_broker):
    Feed.objects.create(url="https://a.example/rss", last_success_at=datetime(2026, 11, 25, 9, tzinfo=UTC))
    Feed.objects.create(url="https://b.example/rss", last_success_at=datetime(2026, 11, 26, 6, tzinfo=UTC))
    Feed.objects.create(url="https://c.example/rss", last_error="HTTP 503")
    subscriber = Subscriber.objects.create(email="a@example.org", status="active")
    sent_at = datetime(2026, 11, 26, 8, 1, tzinfo=UTC)
    Delivery.objects.create(
        subscriber=subscriber, period="2026-11-26", scheduled_for=sent_at, status="sent", sent_at=sent_at
    )
    body = client.get("/healthz").json()
    assert body["last_ingest"] == "2026-11-26T06:00:00+00:00"
    assert body["last_dispatch"] == "2026-11-26T08:01:00+00:00"


@pytest.mark.django_db
def test_a_missing_broker_folder_is_down(client, filesystem_broker):
    shutil.rmtree(filesystem_broker)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False


@pytest.mark.redis
@pytest.mark.django_db
def test_it_pings_a_real_redis(client, settings, redis_url):
    settings.REDIS_URL = redis_url
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["broker"]["kind"] == "redis"


@pytest.mark.django_db
def test_a_refused_redis_connection_is_reported_down_with_503(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["broker"]["ok"] is False
    assert "ConnectionError" in body["broker"]["error"]
    assert body["database"]["ok"] is True


@pytest.mark.redis
@pytest.mark.django_db
def test_a_redis_that_stops_turns_healthz_from_200_to_503(client, settings, tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(50):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        settings.REDIS_URL = url
        assert client.get("/healthz").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False


@pytest.mark.django_db
def test_probes_may_use_head_but_not_post(client, filesystem_broker):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_a_database_that_refuses_connections_is_reported_down(filesystem_broker):
    from django.db.backends.postgresql.base import DatabaseWrapper

    unreachable = DatabaseWrapper(
        {
            **connection.settings_dict,
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "paperboy",
            "HOST": "127.0.0.1",
            "PORT": "1",
            "USER": "postgres",
            "PASSWORD": "",
            "OPTIONS": {"connect_timeout": 2},
        },
        alias="unreachable",
    )
    healthy, report = health(unreachable)
    assert healthy is False
    assert report["status"] == "down"
    assert report["database"]["ok"] is False and "OperationalError" in report["database"]["error"]
    assert report["broker"]["ok"] is True
    assert report["last_ingest"] is None and report["last_dispatch"] is None


# --- mail servers refusing our messages -----------------------------------------------------------


@pytest.mark.django_db
def test_it_says_degraded_when_a_mail_server_refuses_our_messages(client, filesystem_broker, settings):
    papers = [make_paper(index, title, abstract) for index, (title, abstract) in enumerate(seed_papers()[:2])]
    deliveries = []
    for n in range(6):
        subscriber = make_subscriber(f"reader{n}@example.org")
        Candidate.objects.create(subscriber=subscriber, paper=papers[0], score=1.0, reason="r")
        deliveries.append(Delivery.objects.create(subscriber=subscriber, period="p", scheduled_for=datetime.now(UTC)))
    assert client.get("/healthz").json()["status"] == "ok"

    with SmtpSink(pipelining=True, data_answer="550 5.7.26 Unauthenticated email is not accepted (DMARC)") as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        send_delivery_chunk([d.id for d in deliveries])

    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["refused_messages"] == {"window_minutes": 60, "tried": 5, "refused": 5, "rate": 1.0, "alarm": True}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tried", "refused", "minutes_ago", "status"),
    [
        (1000, 4, 1, "ok"),  # too few to mean anything
        (100, 5, 1, "ok"),  # 5 %, not more
        (100, 6, 1, "degraded"),
        (100, 60, 61, "ok"),  # out of the window
        (0, 5, 1, "degraded"),  # bounces reporting refused messages, with nothing sent lately
    ],
)
def test_degraded_means_more_than_the_alarm_rate_of_recent_digests_refused_as_messages(
    client, filesystem_broker, settings, tried, refused, minutes_ago, status
):
    from datetime import timedelta

    settings.MESSAGE_REFUSAL_ALARM_RATE, settings.MESSAGE_REFUSAL_WINDOW_MINUTES = 0.05, 60
    tally(tried, refused, now=datetime.now(UTC) - timedelta(minutes=minutes_ago))

    response = client.get("/healthz")

    assert (response.status_code, response.json()["status"]) == (200, status)
