import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection

from digest.delivery.claims import is_waiting
from digest.delivery.retention import purge_old_rows
from digest.delivery.sending import send_delivery_chunk
from digest.models import Candidate, Delivery, MatchChunk, MatchRun, Paper
from digest.tasks import purge_old_rows as purge_task
from tests.support.digest_samples import NOW, hold, make_subscriber, queued_digest, reason_for
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.django_db

OLD = NOW - timedelta(days=90)  # older than the default 60 days of RETENTION_DAYS


def digest_of(email: str, papers, status: str, *, when=OLD, count: int = 3, **fields) -> Delivery:
    """A delivery in `status` scheduled `when`, holding `count` candidates."""
    subscriber = make_subscriber(email)
    delivery = Delivery.objects.create(
        subscriber=subscriber, period=f"{when:%Y-%m-%d}", scheduled_for=when, status=status, **fields
    )
    held = [
        Candidate.objects.create(
            subscriber=subscriber, paper=paper, score=1 - rank / 10, reason=reason_for(paper.title)
        )
        for rank, paper in enumerate(papers[:count])
    ]
    return hold(delivery, held) if held else delivery


def waiting(email: str, papers, count: int = 3):
    subscriber = make_subscriber(email)
    for rank, paper in enumerate(papers[:count]):
        Candidate.objects.create(subscriber=subscriber, paper=paper, score=1 - rank / 10, reason="x")
    return subscriber


def test_it_deletes_old_finished_deliveries_with_their_candidates_and_keeps_recent_ones(papers):
    sent = digest_of("sent@example.org", papers, Delivery.Status.SENT)
    failed = digest_of("failed@example.org", papers, Delivery.Status.FAILED)
    recent = digest_of("recent@example.org", papers, Delivery.Status.SENT, when=NOW - timedelta(days=2))

    purged = purge_old_rows(NOW)

    assert (purged.deliveries, purged.candidates) == (2, 6)
    assert list(Delivery.objects.values_list("id", flat=True)) == [recent.id]
    assert not Candidate.objects.filter(subscriber_id__in=[sent.subscriber_id, failed.subscriber_id]).exists()
    assert recent.candidates.count() == 3


def test_nothing_a_pending_or_retrying_delivery_needs_is_purged(papers):
    Paper.objects.update(first_seen=OLD)  # stale, were they still waiting
    queued = digest_of("queued@example.org", papers, Delivery.Status.QUEUED)
    retrying = digest_of(
        "retrying@example.org", papers, Delivery.Status.QUEUED, attempts=2, next_attempt_at=NOW + timedelta(hours=1)
    )
    sending = digest_of("sending@example.org", papers, Delivery.Status.SENDING, attempts=1, claimed_at=OLD)
    # A queued first attempt whose content is not fixed yet: its subscriber's waiting candidates.
    unfixed = queued_digest("unfixed@example.org", papers)
    Delivery.objects.filter(id=unfixed.id).update(scheduled_for=OLD)
    abandoned = waiting("left@example.org", papers)  # waiting, stale, and no delivery to come

    purged = purge_old_rows(NOW)

    assert purged.deliveries == 0
    for delivery in (queued, retrying, sending):
        assert delivery.candidates.count() == 3
    assert Candidate.objects.filter(is_waiting(), subscriber=unfixed.subscriber).count() == 3
    assert not Candidate.objects.filter(subscriber=abandoned).exists()
    assert purged.candidates == 3
    assert Delivery.objects.count() == 4


def test_waiting_candidates_for_recent_papers_are_kept(papers):
    reader = waiting("ada@example.org", papers)

    assert purge_old_rows(NOW + timedelta(days=1)).candidates == 0
    assert Candidate.objects.filter(subscriber=reader).count() == 3


def test_it_deletes_in_batches_until_nothing_old_is_left(papers):
    for n in range(5):
        digest_of(f"reader{n}@example.org", papers, Delivery.Status.SENT)

    purged = purge_old_rows(NOW, batch_size=2)

    assert (purged.deliveries, purged.candidates) == (5, 15)
    assert not Delivery.objects.exists() and not Candidate.objects.exists()


def test_old_match_runs_go_but_the_newest_finished_run_stays():
    old_runs = [MatchRun.objects.create(first_paper_id=n, last_paper_id=n + 1) for n in range(3)]
    MatchRun.objects.filter(id__in=[r.id for r in old_runs]).update(started_at=OLD, finished_at=OLD)
    lost = MatchRun.objects.create()  # its chunks never finished
    MatchRun.objects.filter(id=lost.id).update(started_at=OLD)
    recent = MatchRun.objects.create(finished_at=NOW)

    assert purge_old_rows(NOW).match_runs == 3

    # The next run starts after the finished run with the highest papers, however old it is.
    assert set(MatchRun.objects.values_list("id", flat=True)) == {old_runs[-1].id, recent.id}


def test_chunk_markers_go_a_day_after_their_run_finished_and_are_not_counted_as_runs():
    runs = {
        age: MatchRun.objects.create(first_paper_id=0, last_paper_id=10, finished_at=NOW - age)
        for age in (timedelta(hours=25), timedelta(hours=23))
    }
    unfinished = MatchRun.objects.create(first_paper_id=10, last_paper_id=20)
    for run in [*runs.values(), unfinished]:
        MatchChunk.objects.bulk_create([MatchChunk(run=run, first_subscriber_id=n) for n in (1, 501)])

    purged = purge_old_rows(NOW)

    assert (purged.match_chunks, purged.match_runs) == (2, 0)
    kept = {(chunk.run_id, chunk.first_subscriber_id) for chunk in MatchChunk.objects.all()}
    assert kept == {(run.id, n) for run in (runs[timedelta(hours=23)], unfinished) for n in (1, 501)}


def test_a_purged_runs_chunk_markers_go_with_it_and_only_runs_are_counted():
    run = MatchRun.objects.create(first_paper_id=0, last_paper_id=10)
    MatchRun.objects.filter(id=run.id).update(started_at=OLD)  # lost: never finished
    MatchChunk.objects.create(run=run, first_subscriber_id=1)
    MatchRun.objects.create(first_paper_id=0, last_paper_id=10, finished_at=NOW)

    assert purge_old_rows(NOW).match_runs == 1
    assert not MatchChunk.objects.exists()


def test_the_newest_finished_run_is_kept_even_when_old():
    run = MatchRun.objects.create(first_paper_id=0, last_paper_id=10)
    MatchRun.objects.filter(id=run.id).update(started_at=OLD, finished_at=OLD)

    assert purge_old_rows(NOW).match_runs == 0
    assert MatchRun.objects.filter(id=run.id).exists()


def test_the_beat_runs_the_purge_daily(papers, settings):
    settings.RETENTION_DAYS = 1
    digest_of("sent@example.org", papers, Delivery.Status.SENT, when=NOW - timedelta(days=3))

    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-old-rows"]
    assert (entry["task"], entry["schedule"]) == ("digest.purge_old_rows", 24 * 3600.0)
    assert purge_task.delay().get()["deliveries"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_purge_running_during_a_send_changes_nothing_sent(papers, settings):
    """The sink holds the first digest's data; meanwhile a purge whose cutoff is past everything
    runs; once released, every digest goes out whole and keeps its candidates."""
    with SmtpSink(pipelining=True) as sink:
        for name, value in sink.email_settings().items():
            setattr(settings, name, value)
        deliveries = [queued_digest(f"reader{n}@example.org", papers, count=3) for n in range(4)]
        for delivery in deliveries:  # old enough to purge, were they finished
            Delivery.objects.filter(id=delivery.id).update(scheduled_for=OLD)
        Paper.objects.update(first_seen=OLD)
        done = threading.Event()
        results = []

        def send() -> None:
            try:
                results.append(send_delivery_chunk([d.id for d in deliveries]))
            finally:
                connection.close()
                done.set()

        sink.hold()
        sender = threading.Thread(target=send)
        sender.start()
        try:
            for _ in range(500):
                if sink.held_now:
                    break
                done.wait(0.01)
            assert sink.held_now, "the send never reached the sink"
            purged = purge_old_rows(NOW + timedelta(days=365))
        finally:
            sink.release()
            sender.join(30)

        assert (purged.deliveries, purged.candidates) == (0, 0)
        assert results and results[0].sent == 4
        for n, delivery in enumerate(deliveries):
            delivery.refresh_from_db()
            assert (delivery.status, delivery.paper_count) == (Delivery.Status.SENT, 3)
            assert delivery.candidates.count() == 3
            text = " ".join(sink.messages_for(f"reader{n}@example.org")[0].get_body(("plain",)).get_content().split())
            for paper in papers[:3]:
                assert " ".join(paper.title.split()[:3]) in text
