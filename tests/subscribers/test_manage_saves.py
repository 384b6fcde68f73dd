"""Saving preferences: rate-limited per subscriber, and however many saves, at most one re-match
waits in the queue, and it matches the last preferences saved.

The queue is a real broker (kombu's filesystem transport as in `make run`, or Redis); the
"worker" takes the queued messages off it and runs their tasks.
"""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from digest.models import Candidate, Paper
from subscribers.models import Subscriber
from subscribers.tokens import make_token
from tests.support.broker import queued_tasks

pytestmark = pytest.mark.django_db

Status = Subscriber.Status


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


@pytest.fixture
def reader():
    return Subscriber.objects.create(email="reader@example.org", status=Status.ACTIVE, keywords="attention")


@pytest.fixture
def papers():
    recent = timezone.now() - timedelta(days=1)
    for n, (title, abstract) in enumerate(
        [
            ("Sparse attention for long sequences", "We make attention cheaper."),
            ("Video diffusion models", "Diffusion for video generation."),
            ("Protein folding with graph networks", "Biology meets graphs."),
        ]
    ):
        Paper.objects.create(guid=f"p{n}", arxiv_id=f"2611.0000{n}", title=title, abstract=abstract, first_seen=recent)


def preferences(**overrides) -> dict:
    data = {
        "keywords": "attention",
        "interests": "",
        "authors": "",
        "frequency": "daily",
        "weekday": "0",
        "delivery_hour": "8",
        "timezone": "UTC",
        "max_papers": "10",
        "category_mode": "boost",
        "action": "save",
    }
    return {**data, **overrides}


def manage_path(subscriber: Subscriber) -> str:
    return reverse("subscribers:manage", args=[make_token(subscriber, "manage")])


def run(tasks: list[tuple[str, list]]) -> None:
    for name, args in tasks:
        app.tasks[name].apply(args=args)


def test_thirty_rapid_saves_queue_one_rematch_that_matches_the_last_preferences(
    real_queue, settings, reader, papers, django_capture_on_commit_callbacks
):
    settings.MANAGE_RATE_PER_SUBSCRIBER = 100
    client, path = Client(), manage_path(reader)
    with django_capture_on_commit_callbacks(execute=True):
        answers = [client.post(path, preferences(keywords=f"protein, word{n}")).status_code for n in range(29)]
        answers.append(client.post(path, preferences(keywords="diffusion")).status_code)

    assert answers == [302] * 30
    waiting = queued_tasks()
    assert waiting == [("digest.match_recent_papers", [reader.pk])]

    run(waiting)

    matched = set(Candidate.objects.filter(subscriber=reader).values_list("paper__title", flat=True))
    assert matched == {"Video diffusion models"}, "the last preferences saved are the ones matched"


def test_a_save_after_the_rematch_started_queues_the_next_one(
    real_queue, reader, papers, django_capture_on_commit_callbacks
):
    client, path = Client(), manage_path(reader)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(path, preferences(keywords="protein"))
    run(queued_tasks())  # the worker takes it: the next change must be matched too

    with django_capture_on_commit_callbacks(execute=True):
        client.post(path, preferences(keywords="diffusion"))
        client.post(path, preferences(keywords="attention"))
    waiting = queued_tasks()

    assert waiting == [("digest.match_recent_papers", [reader.pk])]
    run(waiting)
    titles = set(Candidate.objects.filter(subscriber=reader).values_list("paper__title", flat=True))
    assert "Sparse attention for long sequences" in titles


def test_two_subscribers_each_get_their_own_rematch(real_queue, reader, papers, django_capture_on_commit_callbacks):
    other = Subscriber.objects.create(email="other@example.org", status=Status.ACTIVE, keywords="protein")
    with django_capture_on_commit_callbacks(execute=True):
        for subscriber in (reader, other, reader, other):
            Client().post(manage_path(subscriber), preferences(keywords="diffusion"))

    assert sorted(args[0] for _, args in queued_tasks()) == sorted([reader.pk, other.pk])


def test_saves_beyond_the_hourly_limit_get_a_429_that_keeps_the_form_and_saves_nothing(
    settings, reader, django_capture_on_commit_callbacks
):
    settings.MANAGE_RATE_PER_SUBSCRIBER = 3
    client, path = Client(), manage_path(reader)
    for n in range(3):
        assert client.post(path, preferences(keywords=f"saved{n}")).status_code == 302

    refused = client.post(path, preferences(keywords="typed but refused", interests="long attention"))

    html = refused.content.decode()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "made many changes in the last hour" in html and "Nothing was saved" in html
    assert 'value="typed but refused"' in html and "long attention</textarea>" in html
    reader.refresh_from_db()
    assert reader.keywords == "saved2"


def test_the_limit_is_per_subscriber_whichever_link_is_used(settings, reader):
    settings.MANAGE_RATE_PER_SUBSCRIBER = 2
    other = Subscriber.objects.create(email="other@example.org", status=Status.ACTIVE, keywords="x")
    for _ in range(2):
        Client().post(manage_path(reader), preferences())  # a fresh token each time, as in each email

    assert Client().post(manage_path(reader), {"action": "pause"}).status_code == 429
    assert Client().post(manage_path(other), preferences()).status_code == 302
    reader.refresh_from_db()
    assert reader.status == Status.ACTIVE, "a refused pause changes nothing"


@pytest.mark.redis
def test_the_limit_holds_across_web_processes_through_redis(settings, reader, redis_url):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    settings.MANAGE_RATE_PER_SUBSCRIBER = 2
    codes = [Client().post(manage_path(reader), preferences()).status_code for _ in range(3)]
    assert codes == [302, 302, 429]
