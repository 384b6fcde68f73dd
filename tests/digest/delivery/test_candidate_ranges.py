"""A digest holds an id range of its subscriber's candidates (digest/delivery/claims.py): each
candidate is in one digest at most, whatever runs at the same time, and the range is what the
web copy, the feedback links and the retention purge read."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from digest.delivery.claims import claim_chunk, is_waiting
from digest.delivery.digest_email import build_digest_context, delivery_papers
from digest.delivery.retention import purge_old_rows
from digest.matching.runs import clear_index_cache, match_chunk, match_recent_papers, start_match_run
from digest.models import Candidate, Delivery, Paper
from subscribers.models import Subscriber
from tests.support.digest_samples import NOW, fresh, make_paper, make_subscriber, queued_digest

SITE = "https://paperboy.example.org"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE


def held_by(delivery: Delivery) -> set[int]:
    return set(fresh(delivery).candidates.values_list("id", flat=True))


def in_thread(work, *args):
    """Run `work(*args)` in a thread with its own database connection; returns (thread, result)."""
    result: list = []

    def run() -> None:
        try:
            result.append(work(*args))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_claims_of_one_subscribers_digests_at_once_take_disjoint_papers(on_postgres, papers):
    older = queued_digest("ada@example.org", papers, count=3)
    newer = Delivery.objects.create(subscriber=older.subscriber, period="2026-11-27", scheduled_for=NOW)
    claimed, release = threading.Event(), threading.Event()

    def first_claim_held_open() -> int:
        with transaction.atomic():  # the claim's own transaction becomes a savepoint of this one
            taken = len(claim_chunk([older.id], NOW)[2][older.id])
            claimed.set()
            release.wait(10)
        return taken

    first, first_took = in_thread(first_claim_held_open)
    assert claimed.wait(10)
    second, second_took = in_thread(lambda: len(claim_chunk([newer.id], NOW)[2][newer.id]))
    second.join(0.5)
    assert second.is_alive(), "the second claim should wait for the subscriber's lock"
    release.set()
    first.join(10)
    second.join(10)

    assert (first_took, second_took) == ([3], [0])
    assert len(held_by(older)) == 3 and held_by(newer) == set()
    assert not Candidate.objects.filter(is_waiting()).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_match_committed_late_waits_for_a_later_digest_and_is_never_skipped(on_postgres):
    """A daily chunk's insert takes its ids and stays uncommitted; a re-match of the same reader
    (new papers) must not commit a higher id before it, or a claim in between would fix a range
    above the late candidate, which no digest would then take."""
    clear_index_cache()
    reader = make_subscriber("ada@example.org", keywords='"neural field"')
    old = make_paper(1, "Neural field codecs", "A neural field per frame.")
    Paper.objects.filter(id=old.id).update(first_seen=timezone.now() - timedelta(days=30))  # too old to re-match
    plan = start_match_run()
    first = Delivery.objects.create(subscriber=reader, period="2026-11-26", scheduled_for=NOW)
    second = Delivery.objects.create(subscriber=reader, period="2026-11-27", scheduled_for=NOW)
    inserted, release = threading.Event(), threading.Event()

    def daily_chunk_committing_late() -> int:
        with transaction.atomic():
            created = match_chunk(plan.run_id, plan.chunks[0])
            inserted.set()
            release.wait(10)
        return created

    daily, _ = in_thread(daily_chunk_committing_late)
    assert inserted.wait(10)
    make_paper(2, "Neural field video", "Neural field compression of video.")  # recent: only the re-match has it
    rematch, _ = in_thread(match_recent_papers, reader.id, 2)
    rematch.join(0.5)
    assert rematch.is_alive(), "the re-match's insert should wait for the reader's lock"
    claim, _ = in_thread(claim_chunk, [first.id], NOW)
    release.set()
    for thread in (daily, rematch, claim):
        thread.join(10)
    claim_chunk([second.id], NOW)

    both = set(Candidate.objects.filter(subscriber=reader).values_list("id", flat=True))
    assert len(both) == 2
    assert held_by(first) | held_by(second) == both
    assert held_by(first) & held_by(second) == set()


@pytest.mark.django_db
def test_a_sent_digests_web_copy_and_feedback_links_keep_its_papers_after_later_digests(client, papers):
    earlier = queued_digest("ada@example.org", papers, count=3)
    claim_chunk([earlier.id], NOW)
    for rank, paper in enumerate(papers[3:6]):
        Candidate.objects.create(subscriber=earlier.subscriber, paper=paper, score=0.9 - rank / 10, reason="later")
    later = Delivery.objects.create(subscriber=earlier.subscriber, period="2026-11-27", scheduled_for=NOW)
    claim_chunk([later.id], NOW)
    earlier = fresh(earlier)
    shown, more = delivery_papers(earlier)
    context = build_digest_context(earlier.subscriber, shown, len(more), earlier)

    page = client.get(context["view_url"].removeprefix(SITE)).content.decode()

    assert [pick.paper_id for pick in shown] == [paper.id for paper in papers[:3]]
    assert all(paper.title in page for paper in papers[:3])
    assert not any(paper.title in page for paper in papers[3:6])
    item = context["items"][0]
    assert client.get(item.more_url.removeprefix(SITE)).status_code == 200
    # The same digest's token does not vouch for a paper of the later digest.
    other = item.more_url.replace(f"/{papers[0].id}/more/", f"/{papers[3].id}/more/")
    assert client.get(other.removeprefix(SITE)).status_code == 404


@pytest.mark.django_db
def test_the_purge_deletes_an_old_digests_range_and_keeps_what_a_retry_and_the_next_digest_need(papers):
    sent = queued_digest("ada@example.org", papers, count=3)
    claim_chunk([sent.id], NOW)
    Delivery.objects.filter(id=sent.id).update(status=Delivery.Status.SENT, scheduled_for=NOW - timedelta(days=90))
    reader = sent.subscriber
    for rank, paper in enumerate(papers[3:6]):
        Candidate.objects.create(subscriber=reader, paper=paper, score=0.9 - rank / 10, reason="retried")
    retrying = Delivery.objects.create(subscriber=reader, period="2026-11-27", scheduled_for=NOW - timedelta(days=90))
    claim_chunk([retrying.id], NOW)
    Delivery.objects.filter(id=retrying.id).update(status=Delivery.Status.QUEUED, next_attempt_at=NOW)
    waiting = [
        Candidate.objects.create(subscriber=reader, paper=paper, score=0.5, reason="new") for paper in papers[6:8]
    ]
    old_range = held_by(sent)
    kept_range = held_by(retrying)

    purged = purge_old_rows(timezone.now() + timedelta(days=365))

    assert (purged.deliveries, purged.candidates) == (1, 3)
    assert not Candidate.objects.filter(id__in=old_range).exists()
    assert held_by(retrying) == kept_range and len(kept_range) == 3
    assert set(Candidate.objects.filter(is_waiting(), subscriber=reader).values_list("id", flat=True)) == {
        c.id for c in waiting
    }
    retried = claim_chunk([retrying.id], NOW + timedelta(minutes=1))[2][retrying.id]
    assert [pick.paper_id for pick in retried] == [paper.id for paper in papers[3:6]]
    newest = Delivery.objects.create(subscriber=reader, period="2026-11-28", scheduled_for=NOW)
    assert {pick.paper_id for pick in claim_chunk([newest.id], NOW)[2][newest.id]} == {p.id for p in papers[6:8]}


@pytest.mark.django_db
def test_the_purge_deletes_the_ranges_of_a_whole_batch_of_old_digests(papers, settings):
    settings.RETENTION_BATCH_SIZE = 1000
    readers = Subscriber.objects.bulk_create(Subscriber(email=f"r{n}@example.org", status="active") for n in range(450))
    taken = Candidate.objects.bulk_create(
        Candidate(subscriber=r, paper=papers[0], score=1, reason="r") for r in readers
    )
    Delivery.objects.bulk_create(
        Delivery(
            subscriber=r,
            period="2026-08-01",
            scheduled_for=NOW - timedelta(days=120),
            status=Delivery.Status.SENT,
            candidates_after=c.id - 1,
            candidates_through=c.id,
        )
        for r, c in zip(readers, taken, strict=True)
    )
    kept = Candidate.objects.create(subscriber=readers[0], paper=papers[1], score=1, reason="waits, and is recent")

    purged = purge_old_rows(NOW)

    assert (purged.deliveries, purged.candidates) == (450, 450)
    assert list(Candidate.objects.values_list("id", flat=True)) == [kept.id]
