import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import close_old_connections, connection, transaction

from digest.delivery import dispatch
from digest.delivery.claims import claim_chunk
from digest.delivery.dispatch import claim_batch, create_deliveries, dispatch_due
from digest.models import Delivery
from digest.tasks import dispatch_digests
from subscribers.models import Subscriber
from subscribers.scheduling import next_delivery_after
from tests.support.digest_samples import make_subscriber

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def due_subscriber(email: str, **fields) -> Subscriber:
    values = {"timezone": "UTC", "delivery_hour": 8, "next_delivery_at": NOW - timedelta(hours=1)}
    values.update(fields)
    return make_subscriber(email, **values)


@pytest.mark.django_db
def test_it_creates_a_delivery_for_each_due_subscriber_and_moves_their_slot():
    due = due_subscriber("due@example.org")
    due_subscriber("later@example.org", next_delivery_at=NOW + timedelta(minutes=5))
    due_subscriber("paused@example.org", status=Subscriber.Status.PAUSED)
    due_subscriber("never@example.org", next_delivery_at=None)

    ids = dispatch_due(NOW, queue=False)

    delivery = Delivery.objects.get()
    assert ids == [delivery.id]
    assert (delivery.subscriber, delivery.period, delivery.status) == (due, "2026-11-26", Delivery.Status.QUEUED)
    assert delivery.scheduled_for == NOW - timedelta(hours=1)
    due.refresh_from_db()
    assert due.next_delivery_at == datetime(2026, 11, 27, 8, tzinfo=UTC)


@pytest.mark.django_db
def test_it_gives_an_active_subscriber_without_a_slot_their_next_one():
    sub = due_subscriber("ada@example.org", next_delivery_at=None, timezone="Europe/Berlin")
    assert dispatch_due(NOW, queue=False) == []
    sub.refresh_from_db()
    assert sub.next_delivery_at == datetime(2026, 11, 27, 7, tzinfo=UTC)  # 08:00 in Berlin


@pytest.mark.django_db
def test_it_never_queues_a_period_twice():
    due_subscriber("ada@example.org")
    assert len(dispatch_due(NOW, queue=False)) == 1
    assert dispatch_due(NOW, queue=False) == []
    assert dispatch_due(NOW, force=True, queue=False) == []  # `--now` the same day: already has its digest
    assert Delivery.objects.count() == 1


def claim_and_create(subscribers: list[Subscriber], now: datetime = NOW) -> list[int]:
    """One batch of the dispatcher, for subscribers it listed as due."""
    with transaction.atomic():
        return create_deliveries(claim_batch([s.id for s in subscribers], now), now)


@pytest.mark.django_db
def test_a_batch_listed_before_another_dispatcher_moved_the_slot_claims_nothing():
    # Two days overdue (after an outage): claimed again, its slot (now tomorrow) would stand for today.
    due_subscriber("ada@example.org", next_delivery_at=NOW - timedelta(days=2))
    listed = list(Subscriber.objects.all())
    assert len(claim_and_create(listed)) == 1  # the other dispatcher

    assert claim_and_create(listed) == []
    assert list(Delivery.objects.values_list("period", flat=True)) == ["2026-11-24"]


@pytest.mark.django_db
def test_it_treats_every_active_subscriber_as_due_with_force():
    due_subscriber("early@example.org", next_delivery_at=NOW + timedelta(hours=20))
    due_subscriber("unscheduled@example.org", next_delivery_at=None)
    due_subscriber("gone@example.org", status=Subscriber.Status.UNSUBSCRIBED)

    assert len(dispatch_due(NOW, force=True, queue=False)) == 2
    assert set(Delivery.objects.values_list("subscriber__email", flat=True)) == {
        "early@example.org",
        "unscheduled@example.org",
    }


@pytest.mark.django_db
def test_it_limits_dispatch_to_the_given_addresses_whatever_their_case():
    due_subscriber("ada@example.org")
    due_subscriber("bob@example.org")
    ids = dispatch_due(NOW, emails=["ADA@Example.org"], queue=False)
    assert list(Delivery.objects.filter(id__in=ids).values_list("subscriber__email", flat=True)) == ["ada@example.org"]


@pytest.mark.django_db
def test_it_queues_chunks_of_ids_after_commit(settings, django_capture_on_commit_callbacks):
    settings.DIGEST_CHUNK_SIZE = 2
    for n in range(5):
        due_subscriber(f"reader{n}@example.org")
    with django_capture_on_commit_callbacks() as callbacks:
        ids = dispatch_due(NOW)
    assert len(ids) == 5
    assert len(callbacks) == 3  # chunks of 2, 2 and 1, queued only once the rows are committed


@pytest.mark.django_db
def test_it_dispatches_with_a_fixed_number_of_queries_per_subscriber(django_assert_num_queries, settings):
    settings.DIGEST_CHUNK_SIZE = 50
    for n in range(20):
        due_subscriber(f"reader{n}@example.org")
    for n in range(5):
        due_subscriber(f"tokyo{n}@example.org", timezone="Asia/Tokyo")
    due_subscriber("alone@example.org", delivery_hour=6)
    # To find unscheduled subscribers and list the due ones; then per batch a savepoint and its
    # release, one read that locks the rows, one update per next slot (three here), and one
    # insert that returns the new ids.
    with django_assert_num_queries(2 + 2 + (1 + 3 + 1)):
        assert len(dispatch_due(NOW, queue=False)) == 26
    assert set(Subscriber.objects.values_list("next_delivery_at", flat=True)) == {
        datetime(2026, 11, 27, 8, tzinfo=UTC),
        datetime(2026, 11, 26, 23, tzinfo=UTC),
        datetime(2026, 11, 27, 6, tzinfo=UTC),
    }


@pytest.mark.django_db
def test_a_batch_that_another_dispatcher_partly_claimed_is_claimed_for_the_rest():
    for n in range(3):
        due_subscriber(f"reader{n}@example.org")
    listed = list(Subscriber.objects.order_by("id"))
    claim_and_create([Subscriber.objects.get(email="reader1@example.org")])  # the other dispatcher

    assert len(claim_and_create(listed)) == 2

    assert sorted(Delivery.objects.values_list("subscriber__email", flat=True)) == [
        f"reader{n}@example.org" for n in range(3)
    ]
    assert set(Subscriber.objects.values_list("next_delivery_at", flat=True)) == {datetime(2026, 11, 27, 8, tzinfo=UTC)}


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_the_beat_task_dispatches_what_is_due(django_capture_on_commit_callbacks):
    due_subscriber("ada@example.org")
    with django_capture_on_commit_callbacks():
        assert dispatch_digests() == 1


def _in_threads(count: int, target) -> list:
    results: list = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target()
        except BaseException as error:  # surfaced below, in the test's thread
            errors.append(error)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_on_postgresql_queue_each_subscriber_once(on_postgres):
    Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n}@example.org", status="active", next_delivery_at=NOW - timedelta(minutes=n))
        for n in range(200)
    )
    results = _in_threads(4, lambda: dispatch_due(NOW, queue=False))
    queued = [delivery_id for ids in results for delivery_id in ids]
    assert len(queued) == len(set(queued)) == 200
    assert Delivery.objects.count() == 200


def dispatchers_listing_from(starts: list[int], emails: list[str], now: datetime) -> list:
    """Dispatchers at once, one per start, each given the addresses from its start on."""
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for start in starts:
        pending.put(start)
    return _in_threads(len(starts), lambda: dispatch_due(now, emails=emails[pending.get() :], queue=False))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_dispatchers_on_postgresql_with_shifted_batches_queue_each_subscriber_once(on_postgres, monkeypatch):
    monkeypatch.setattr(dispatch, "DISPATCH_BATCH_SIZE", 10)
    zones = ["UTC", "Asia/Tokyo", "America/New_York"]  # three next slots, interleaved by id
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n:03}@example.org", status="active", timezone=zones[n % 3], delivery_hour=8)
        for n in range(120)
    )
    emails = [s.email for s in subscribers]
    for day in range(5):
        now = NOW + timedelta(days=day)
        Subscriber.objects.update(next_delivery_at=now - timedelta(hours=1))
        # Each lists the slot from a different subscriber on, so its batches straddle the others'
        # and meet a batch's slot groups in another order: moved group by group, the shared rows
        # were locked in opposite orders, and PostgreSQL found a deadlock in 19 rounds out of 20.
        results = dispatchers_listing_from([0, 1, 2], emails, now)

        queued = [delivery_id for ids in results for delivery_id in ids]
        assert len(queued) == len(set(queued)) == 120
        assert Delivery.objects.filter(queued_at=now).values("subscriber").distinct().count() == 120
        assert set(Subscriber.objects.values_list("timezone", "next_delivery_at")) == {
            (zone, next_delivery_after(Subscriber(timezone=zone, delivery_hour=8), now)) for zone in zones
        }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_on_postgresql_claim_each_delivery_once(on_postgres):
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n}@example.org", status="active") for n in range(100)
    )
    ids = [
        d.id
        for d in Delivery.objects.bulk_create(
            Delivery(subscriber=s, period="2026-11-26", scheduled_for=NOW) for s in subscribers
        )
    ]
    results = _in_threads(4, lambda: [i for i in ids if claim_chunk([i], NOW)[0]])
    claimed = [delivery_id for chunk in results for delivery_id in chunk]
    assert sorted(claimed) == sorted(ids)
    assert set(Delivery.objects.values_list("status", "attempts")) == {("sending", 1)}


@contextmanager
def held_in_another_transaction(take_locks: Callable[[], object]) -> Iterator[None]:
    """Run `take_locks` in a transaction on another connection, left open until the block ends."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                take_locks()
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        release.set()
        holder.join(10)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_locked_delivery_on_postgresql_is_skipped_not_waited_for(on_postgres):
    subscriber = Subscriber.objects.create(email="ada@example.org", status="active")
    delivery = Delivery.objects.create(subscriber=subscriber, period="2026-11-26", scheduled_for=NOW)
    with held_in_another_transaction(lambda: Delivery.objects.select_for_update().get(id=delivery.id)):
        assert _in_threads(1, lambda: claim_chunk([delivery.id], NOW)[0]) == [[]]
    assert claim_chunk([delivery.id], NOW)[0]


def delivery_rows_read() -> int:
    """Rows of the delivery table read so far in this transaction, by index or by scan."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables "
            "WHERE relname = 'digest_delivery'"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_claim_on_postgresql_reads_its_chunk_not_the_whole_queue_whatever_the_statistics(on_postgres):
    subscriber = Subscriber.objects.create(email="ada@example.org", status="active")
    Delivery.objects.bulk_create(
        Delivery(subscriber=subscriber, period=f"old {n}", scheduled_for=NOW, status="sent") for n in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE digest_delivery")  # statistics from before the dispatch: nothing queued
    queue = Delivery.objects.bulk_create(
        Delivery(subscriber=subscriber, period=f"day {n}", scheduled_for=NOW) for n in range(3000)
    )
    before = delivery_rows_read()

    claimed = claim_chunk([d.id for d in queue[:10]], NOW)[0]

    assert len(claimed) == 10
    assert delivery_rows_read() - before < 100  # not the 3,000 queued


def waiting_for_a_lock() -> int:
    """Other connections to the test database now waiting for a lock another transaction holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_on_postgresql_waits_for_another_and_claims_none_of_the_slots_it_moved(on_postgres):
    due_subscriber("ada@example.org", next_delivery_at=NOW - timedelta(days=2))
    second: list[list[int]] = []
    with held_in_another_transaction(lambda: claim_and_create(list(Subscriber.objects.all()))):  # the first dispatcher
        # It lists Ada as due (the first has not committed), then waits for her row.
        waiting = threading.Thread(target=lambda: (second.append(dispatch_due(NOW, queue=False)), connection.close()))
        waiting.start()
        for _ in range(200):
            if waiting_for_a_lock():
                break
            threading.Event().wait(0.05)
        assert waiting_for_a_lock() == 1
    waiting.join(10)
    assert second == [[]]
    assert list(Delivery.objects.values_list("period", flat=True)) == ["2026-11-24"]


def subscriber_entries_read() -> int:
    """Subscriber rows and index entries read so far in this transaction, by any scan."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(pg_stat_get_xact_tuples_returned(oid)) FROM pg_class "
            "WHERE oid = 'subscribers_subscriber'::regclass "
            "OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'subscribers_subscriber'::regclass)"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("analyzed", [False, True], ids=["statistics as they are", "statistics from before the slot"])
def test_a_dispatch_on_postgresql_reads_each_batch_by_id_not_the_whole_slot_whatever_the_statistics(
    on_postgres, analyzed, monkeypatch
):
    monkeypatch.setattr(dispatch, "DISPATCH_BATCH_SIZE", 10)
    Subscriber.objects.bulk_create(
        Subscriber(email=f"reader{n}@example.org", status="active", next_delivery_at=NOW + timedelta(days=1))
        for n in range(2000)
    )
    if analyzed:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE subscribers_subscriber")  # nobody due yet
    Subscriber.objects.update(next_delivery_at=NOW - timedelta(hours=1))
    before = subscriber_entries_read()

    assert len(dispatch_due(NOW, queue=False)) == 2000

    # Listing the slot, then each batch's rows by id (read, moved, checked by the deliveries' foreign
    # key); not the slot's 2,000 index entries for each of the 200 batches.
    assert (subscriber_entries_read() - before) / 2000 < 10
