"""Matching and sending have queues of their own, and workers send the events Flower reads."""

from config.celery import app

MATCHING = (
    "digest.match_new_papers",
    "digest.match_chunk",
    "digest.match_recent_papers",
    "digest.store_paper_vectors",
    "digest.store_interest_vector",
)
SENDING = ("digest.dispatch_digests", "digest.send_digest_chunk", "digest.retry_deliveries")


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_matching_and_sending_tasks_go_to_their_own_queues():
    assert {queue_of(name) for name in MATCHING} == {"matching"}
    assert {queue_of(name) for name in SENDING} == {"sending"}


def test_ingest_and_subscriber_mail_stay_on_the_default_queue_ahead_of_a_big_send():
    assert queue_of("digest.ingest_feeds") == queue_of("digest.poll_feed") == "celery"
    assert queue_of("subscribers.subscribe") == "celery"


def test_every_routed_task_exists():
    routed = set(MATCHING) | set(SENDING)
    assert routed <= set(app.tasks), routed - set(app.tasks)


def test_a_worker_started_without_queues_takes_all_three():
    assert set(app.amqp.queues) == {"celery", "matching", "sending"}


def test_workers_and_producers_send_events_for_flower():
    assert app.conf.worker_send_task_events is True
    assert app.conf.task_send_sent_event is True
