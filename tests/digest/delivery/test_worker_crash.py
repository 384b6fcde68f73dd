"""A real Celery worker, killed with SIGKILL in the middle of a batch and restarted.

The worker runs as a subprocess against this test's PostgreSQL database, a real Redis broker and
the aiosmtpd sink in this process. The sink stops answering message data halfway through, so the
kill lands while messages are in flight (rows in `sending`, tasks unacknowledged); the restarted
worker gets the unacknowledged tasks back from Redis and reclaims the stuck rows.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from digest.delivery.dispatch import chunked
from digest.models import Candidate, Delivery
from subscribers.models import Subscriber
from tests.support import ROOT
from tests.support.digest_samples import make_paper, seed_papers
from tests.support.smtp_sink import SmtpSink

SUBSCRIBERS = 200
CHUNK = 10
SENDING_TIMEOUT = 2


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    celery = Path(sys.executable).with_name("celery")
    command = [
        str(celery),
        "-A",
        "config",
        "worker",
        "--concurrency=2",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        f"crash{time.time_ns()}@%h",
    ]
    # A session of its own, so one killpg reaches the main process and its pool children.
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def kill(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def wait_until(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_and_restarted_sends_every_digest_exactly_once(on_postgres, redis_url, tmp_path):
    papers = [make_paper(index, title, abstract) for index, (title, abstract) in enumerate(seed_papers()[:3])]
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n:03d}@example.org", status=Subscriber.Status.ACTIVE) for n in range(SUBSCRIBERS)
    )
    Candidate.objects.bulk_create(
        Candidate(subscriber=s, paper=p, score=1.0 - rank / 10, reason="similar to your interest")
        for s in subscribers
        for rank, p in enumerate(papers)
    )
    deliveries = Delivery.objects.bulk_create(
        Delivery(subscriber=s, period="2026-11-26", scheduled_for="2026-11-26T08:00:00Z") for s in subscribers
    )
    log = tmp_path / "worker.log"

    with SmtpSink(data_delay=0.005) as sink:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
            "EMAIL_URL": sink.url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_VISIBILITY_TIMEOUT": "2",
            "SENDING_TIMEOUT_SECONDS": str(SENDING_TIMEOUT),
            "SEND_RATE_PER_SECOND": "0",
            "PAPERBOY_VAR_DIR": str(tmp_path / "var"),
        }
        producer = Celery("crash-test", broker=redis_url)
        for chunk in chunked([d.id for d in deliveries], CHUNK):
            producer.send_task("digest.send_digest_chunk", args=[chunk])

        worker = start_worker(env, log)
        try:
            wait_until(lambda: len(sink.received) >= SUBSCRIBERS // 3, 60, "a third of the digests", log)
            sink.hold()
            wait_until(lambda: sink.held_now >= 1, 20, "a message in flight", log)
            # The server stalls: past SEND_RECORD_GRACE_MS the worker records what was accepted
            # before it waits on, and the kill lands in that wait.
            time.sleep(0.2)
            kill(worker)
            time.sleep(0.5)  # the sink sees the dead connections and drops their unanswered messages
            sink.release()

            before_restart = len(sink.received)
            in_flight = Delivery.objects.filter(status=Delivery.Status.SENDING).count()
            assert 0 < before_restart < SUBSCRIBERS
            assert in_flight >= 1  # the kill really happened mid-send

            # Redis hands unacknowledged tasks back once the visibility timeout has passed, and
            # the stuck rows become claimable after SENDING_TIMEOUT_SECONDS.
            time.sleep(max(2, SENDING_TIMEOUT) + 0.5)
            worker = start_worker(env, log)
            wait_until(
                lambda: not Delivery.objects.exclude(status=Delivery.Status.SENT).exists(),
                90,
                "every delivery sent",
                log,
            )
            time.sleep(1)  # anything sent twice would arrive now
        finally:
            kill(worker)

        counts = sink.per_recipient()
    assert len(counts) == SUBSCRIBERS
    assert set(counts.values()) == {1}
    assert Delivery.objects.filter(status=Delivery.Status.SENT, attempts__gte=2).count() >= in_flight
