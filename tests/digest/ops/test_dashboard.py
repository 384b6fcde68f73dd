from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from kombu import Connection

from digest.delivery.refusal_alarm import tally
from digest.models import Delivery, Feed, Paper, PaperSource
from digest.ops import stats
from subscribers.models import Subscriber, Topic
from tests.support.servers import ThrowawayRedis

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def at(days_ago: int, hour: int = 10) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time(), tzinfo=UTC).replace(hour=hour)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def subscriber(email, status, created, confirmed=None, unsubscribed=None) -> Subscriber:
    row = Subscriber.objects.create(email=email, status=status)
    Subscriber.objects.filter(pk=row.pk).update(
        created_at=created, confirmed_at=confirmed, unsubscribed_at=unsubscribed
    )
    return row


@pytest.mark.django_db
def test_subscribers_over_time_follows_each_subscribers_confirmation_and_unsubscription(frozen):
    subscriber("a@example.org", "active", at(5), confirmed=at(4))
    subscriber("b@example.org", "pending", at(3))
    subscriber("c@example.org", "unsubscribed", at(6), confirmed=at(6), unsubscribed=at(2))
    subscriber("d@example.org", "paused", at(40), confirmed=at(40))
    series = stats.subscribers_over_time(days=7)
    assert series.days[0] == date(2026, 11, 20) and series.days[-1] == TODAY
    assert series.series["active"] == [1, 1, 2, 2, 1, 1, 1]
    assert series.series["pending"] == [0, 1, 0, 1, 1, 1, 1]
    assert series.series["unsubscribed"] == [0, 0, 0, 0, 1, 1, 1]
    assert series.series["paused"] == [1] * 7


@pytest.mark.django_db
def test_digests_per_day_counts_sent_and_failed_by_day(frozen):
    people = [Subscriber.objects.create(email=f"s{i}@example.org", status="active") for i in range(4)]
    for i, person in enumerate(people[:3]):
        Delivery.objects.create(subscriber=person, period=f"p{i}", scheduled_for=at(1), sent_at=at(1, 8), status="sent")
    Delivery.objects.create(subscriber=people[3], period="p", scheduled_for=at(0), status="failed")
    Delivery.objects.create(subscriber=people[0], period="old", scheduled_for=at(50), sent_at=at(50), status="sent")
    series = stats.digests_per_day(days=3)
    assert series.series == {"sent": [0, 3, 0], "failed": [0, 0, 1]}


@pytest.mark.django_db
def test_papers_per_day_are_counted_per_source(frozen):
    arxiv = Feed.objects.create(url="https://rss.arxiv.org/rss/cs.LG", name="arXiv cs.LG")
    hf = Feed.objects.create(url="https://huggingface.co/api/daily_papers")
    for i in range(3):
        paper = Paper.objects.create(guid=f"p{i}", title=f"Paper {i}")
        sighting = PaperSource.objects.create(paper=paper, feed=arxiv)
        PaperSource.objects.filter(pk=sighting.pk).update(first_seen=at(i))
    both = Paper.objects.get(guid="p0")
    PaperSource.objects.create(paper=both, feed=hf)
    series = stats.papers_per_day_by_source(days=3)
    assert series.series == {"arXiv cs.LG": [1, 1, 1], "https://huggingface.co/api/daily_papers": [0, 0, 1]}


@pytest.mark.django_db
def test_most_followed_topics_count_active_subscribers_only():
    llm, vision, _ = (Topic.objects.create(slug=s, name=s.title(), description=s) for s in ("llm", "vision", "audio"))
    for i, status in enumerate(["active", "active", "paused"]):
        Subscriber.objects.create(email=f"{i}@example.org", status=status).topics.add(llm)
    Subscriber.objects.create(email="v@example.org", status="active").topics.add(vision)
    assert stats.most_followed_topics(limit=2) == [("Llm", 2), ("Vision", 1)]


def test_queue_length_counts_messages_in_the_filesystem_broker_folder(settings, filesystem_queue):
    settings.REDIS_URL = ""
    assert stats.queue_length() == 0
    with Connection("filesystem://", transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as connection:
        queue = connection.SimpleQueue("celery")
        for i in range(3):
            queue.put({"n": i})
        connection.SimpleQueue("other").put({"n": 9})
        assert stats.queue_length() == 3
        queue.get(timeout=1).ack()
        assert stats.queue_length() == 2


@pytest.mark.redis
def test_queue_length_is_the_length_of_the_redis_list(settings, redis_url):
    settings.REDIS_URL = redis_url
    with Connection(redis_url) as connection:
        queue = connection.SimpleQueue("celery")
        for i in range(4):
            queue.put({"n": i})
        assert stats.queue_length() == 4


def test_queue_length_is_unknown_when_redis_refuses(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert stats.queue_length() is None


@pytest.mark.django_db
def test_the_dashboard_renders_without_any_data(client, staff, settings, tmp_path):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path)}
    response = client.get("/admin/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('role="img"') == 4
    assert html.count("No data yet.") >= 8  # in each chart's text and description
    assert "tasks waiting" in html


@pytest.mark.django_db
def test_the_dashboard_renders_data_with_a_fixed_number_of_queries(
    client, staff, frozen, django_assert_max_num_queries
):
    feed = Feed.objects.create(url="https://rss.arxiv.org/rss/cs.CL", name="arXiv cs.CL")
    topic = Topic.objects.create(slug="nlp", name="Language models", description="LLMs")
    for i in range(30):
        person = subscriber(f"s{i}@example.org", "active", at(i % 20), confirmed=at(i % 20))
        person.topics.add(topic)
        Delivery.objects.create(
            subscriber=person, period="d", scheduled_for=at(i % 7), sent_at=at(i % 7), status="sent"
        )
        paper = Paper.objects.create(guid=f"g{i}", title=f"Paper {i}")
        PaperSource.objects.create(paper=paper, feed=feed)
    # 13: the chart by source asks a second query, for the papers ingested from files.
    with django_assert_max_num_queries(13):
        response = client.get("/admin/dashboard/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Language models: 30" in html
    assert "arXiv cs.CL" in html
    assert "<strong>30</strong> active subscribers" in html


@pytest.mark.django_db
def test_the_admin_index_links_to_the_dashboard(client, staff):
    assert 'href="/admin/dashboard/"' in client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_the_dashboard_is_for_staff_only(client):
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_the_dashboard_can_show_the_last_week_or_quarter(client, staff):
    assert "Subscribers by status, last 7 days" in client.get("/admin/dashboard/", {"days": "7"}).content.decode()
    html = client.get("/admin/dashboard/", {"days": "90"}).content.decode()
    assert "last 90 days" in html and '<a href="?days=30">30 days</a>' in html
    assert "last 30 days" in client.get("/admin/dashboard/", {"days": "100000"}).content.decode()


@pytest.mark.django_db
def test_the_dashboard_shows_recent_message_refusals_and_flags_an_alarm(client, staff, frozen, settings):
    settings.MESSAGE_REFUSAL_ALARM_RATE, settings.MESSAGE_REFUSAL_WINDOW_MINUTES = 0.05, 60
    tally(200, 3, now=NOW - timedelta(hours=5))
    tally(40, 2, now=NOW - timedelta(minutes=10))
    html = client.get("/admin/dashboard/").content.decode()
    assert '<li id="refused-messages">' in html
    assert "<strong>2</strong> messages refused in 60 min <span>(5 % of 40 tried; 5 of 240 in 24 h)</span>" in html

    tally(40, 20, now=NOW - timedelta(minutes=5))
    html = client.get("/admin/dashboard/").content.decode()
    assert '<li id="refused-messages" class="dashboard-alarm"><strong>22</strong> messages refused' in html
    assert "28 % of 80 tried: over the alarm rate, see /healthz; 25 of 280 in 24 h" in html


def test_queue_length_adds_up_the_matching_and_sending_queues(settings):
    # A Redis of its own: a worker some other test runs on the shared one would take the messages.
    with ThrowawayRedis() as redis, Connection(redis.url()) as connection:
        settings.REDIS_URL = redis.url()
        for name, count in (("celery", 1), ("matching", 2), ("sending", 3), ("elsewhere", 4)):
            for i in range(count):
                connection.SimpleQueue(name).put({"n": i})
        assert stats.queue_depths() == {"celery": 1, "matching": 2, "sending": 3}
        assert stats.queue_length() == 6
