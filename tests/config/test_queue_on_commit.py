"""Work queued once a write commits (config/celery.py): a sentence vector that a match would encode
anyway is queued with `queue_on_commit_or_warn`, so a broker that refuses costs a warning, never
the write nor the caller's answer.

The broker is a Redis port nobody listens on, and the writes really commit.
"""

import logging

import pytest
from django.db import connection

from digest.models import LikedPaper, Paper
from digest.papers.liked_papers import add_liked_papers
from digest.tasks.ingest import ingest_feeds
from subscribers import services
from subscribers.liked_input import parse_liked_text
from subscribers.models import Subscriber

pytestmark = pytest.mark.django_db(transaction=True)

RSS = "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml"


def queue_warnings(caplog) -> list[tuple[str, str]]:
    return [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "config.celery"]


def test_papers_stored_while_the_broker_refuses_are_committed_and_a_warning_says_so(
    refusing_broker, settings, shared_feed, caplog
):
    settings.FEEDS = [str(shared_feed(RSS))]

    with caplog.at_level(logging.WARNING):
        result = ingest_feeds()

    assert (result["new"], result["failed"]) == (3, 0)
    assert not connection.in_atomic_block
    assert Paper.objects.count() == 3
    [(level, message)] = queue_warnings(caplog)
    assert level == "WARNING"
    assert message.startswith("could not queue digest.store_paper_vectors")
    assert message.endswith("; the first run that meets these papers encodes them")


def test_an_interest_saved_while_the_broker_refuses_is_committed_and_a_warning_says_so(refusing_broker, caplog):
    subscriber = Subscriber.objects.create(
        email="ada@example.org", status=Subscriber.Status.ACTIVE, interests="image generation"
    )

    with caplog.at_level(logging.WARNING):
        services.update_preferences(subscriber, services.Preferences(interests="Protein folding."))

    assert not connection.in_atomic_block
    assert Subscriber.objects.get(pk=subscriber.pk).interests == "Protein folding."
    [(level, message)] = queue_warnings(caplog)
    assert (level, message) == (
        "WARNING",
        f"could not queue digest.store_interest_vector({subscriber.pk},); "
        "the first run that matches the subscriber encodes the interest",
    )


def test_liked_papers_added_while_the_broker_refuses_are_committed_and_wait_for_the_periodic_fetch(
    refusing_broker, caplog
):
    subscriber = Subscriber.objects.create(email="ada@example.org", status=Subscriber.Status.ACTIVE)

    with caplog.at_level(logging.WARNING):
        outcome = add_liked_papers(subscriber, parse_liked_text("2604.00001"))

    assert outcome.waiting == 1
    assert not connection.in_atomic_block
    [waiting] = LikedPaper.objects.filter(subscriber=subscriber)
    assert waiting.next_fetch_at is not None
    [(level, message)] = queue_warnings(caplog)
    assert (level, message) == (
        "WARNING",
        "could not queue digest.fetch_liked_papers(); the next periodic run fetches them",
    )


def test_a_task_run_in_this_process_that_fails_is_not_logged_as_a_broker_refusal(caplog):
    from django.db import transaction

    from config.celery import queue_on_commit_or_warn, tasks_in_process

    with caplog.at_level(logging.WARNING), tasks_in_process(), transaction.atomic():
        queue_on_commit_or_warn("digest.no_such_task", 7, otherwise="the next run does it")

    [(level, message)] = queue_warnings(caplog)
    assert (level, message) == (
        "WARNING",
        "digest.no_such_task(7,) ran in this process and failed; the next run does it",
    )
