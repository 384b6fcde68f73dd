"""The hot-path SQL helpers store and find exactly what the ORM calls they stand for would."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from digest.models import Candidate, Delivery, Feed, Paper, PaperSource, SendTally
from digest.plain_sql import (
    _array_literal,
    _stored_column,
    asynchronous_commits,
    ids_among,
    insert_columns,
    insert_for_each,
    insert_or_add,
    insert_rows,
    lock_for_key_share,
    related_values,
    row_exists,
    rows_above_highest,
    rows_unless_held,
    update_each,
    update_rows,
)
from subscribers.models import Subscriber, Topic
from tests.support.threads import in_thread

pytestmark = pytest.mark.django_db

CLAIMED = datetime(2026, 11, 26, 7, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def deliveries():
    rows = []
    for n in range(3):
        subscriber = Subscriber.objects.create(email=f"reader{n}@example.org", status=Subscriber.Status.ACTIVE)
        rows.append(
            Delivery.objects.create(
                subscriber=subscriber,
                period="2026-11-26",
                scheduled_for=CLAIMED,
                status=Delivery.Status.SENDING,
                claimed_at=CLAIMED,
            )
        )
    return rows


def test_row_exists_answers_like_the_orm(deliveries):
    subscriber = deliveries[0].subscriber
    assert row_exists(Subscriber, id=subscriber.id, status=Subscriber.Status.ACTIVE)
    Subscriber.objects.filter(id=subscriber.id).update(status=Subscriber.Status.UNSUBSCRIBED)
    assert not row_exists(Subscriber, id=subscriber.id, status=Subscriber.Status.ACTIVE)
    assert row_exists(Subscriber, id=subscriber.id, status=Subscriber.Status.UNSUBSCRIBED)


def test_update_rows_matches_a_datetime_to_the_microsecond_and_stores_what_the_orm_would(deliveries):
    first = deliveries[0]
    sent_at = datetime(2026, 11, 26, 7, 0, 5, tzinfo=UTC)
    changes = {
        "status": Delivery.Status.SENT,
        "sent_at": sent_at,
        "subject": "3 new papers on ‘fields’",
        "next_attempt_at": None,
    }

    assert update_rows(Delivery, changes, id=first.id, status=Delivery.Status.SENDING, claimed_at=CLAIMED) == 1
    # The compare-and-set: the row is no longer `sending`, so a second writer changes nothing.
    assert update_rows(Delivery, changes, id=first.id, status=Delivery.Status.SENDING, claimed_at=CLAIMED) == 0
    Delivery.objects.filter(id=deliveries[1].id).update(**changes)

    by_sql, by_orm = Delivery.objects.get(id=first.id), Delivery.objects.get(id=deliveries[1].id)
    for name in changes:
        assert getattr(by_sql, name) == getattr(by_orm, name) == changes[name]
    assert Delivery.objects.filter(sent_at=sent_at).count() == 2  # stored in the ORM's format, so found by it


def test_update_rows_misses_a_row_claimed_at_another_moment(deliveries):
    later = CLAIMED.replace(microsecond=123457)
    assert update_rows(Delivery, {"status": Delivery.Status.SENT}, id=deliveries[0].id, claimed_at=later) == 0
    assert Delivery.objects.get(id=deliveries[0].id).status == Delivery.Status.SENDING


def test_update_each_writes_each_row_its_own_values_and_leaves_the_others(deliveries):
    first, second, untouched = deliveries
    changed = update_each(
        Delivery,
        ("paper_count", "more_count", "message_id"),
        {first.id: (10, 41, "<a@paperboy>"), second.id: (3, 0, "<b'quote\"@paperboy>")},
    )
    assert changed == 2
    rows = {d.id: (d.paper_count, d.more_count, d.message_id) for d in Delivery.objects.all()}
    assert rows == {
        first.id: (10, 41, "<a@paperboy>"),
        second.id: (3, 0, "<b'quote\"@paperboy>"),
        untouched.id: (0, 0, ""),
    }
    assert update_each(Delivery, ("paper_count",), {}) == 0


def test_update_each_stores_text_exactly_as_given(deliveries):
    subjects = ['3 new papers on "LLM", {agents}', "back\\slash, NULL", "ünïcode ‘quotes’\ttab"]
    update_each(Delivery, ("subject",), {d.id: (subject,) for d, subject in zip(deliveries, subjects, strict=True)})

    assert [Delivery.objects.get(id=d.id).subject for d in deliveries] == subjects


def test_columns_are_stored_as_each_fields_own_conversion_stores_them(db):
    given = {
        "attempts": [3, "4", 5.0, True, None, 3],
        "subscriber": [7, "8", 7],
        "id": [2**40, 1],
        "message_id": ["<a@paperboy>", "<a@paperboy>", ""],
        "claimed_at": [CLAIMED, CLAIMED, None],
    }
    for name, values in given.items():
        field = Delivery._meta.get_field(name)
        expected = [field.get_db_prep_save(value, connection) for value in values]
        stored = _stored_column(field, values)
        # PostgreSQL's conversion wraps ints in psycopg's Int2/Int4/Int8: the same numbers, the same literal.
        assert stored == expected, name
        assert _array_literal(field, stored) == _array_literal(field, expected), name


def test_update_each_sets_shared_values_only_where_the_conditions_still_hold(deliveries):
    first, second, reclaimed = deliveries
    Delivery.objects.filter(id=reclaimed.id).update(claimed_at=datetime(2026, 11, 26, 7, 30, tzinfo=UTC))
    sent_at = datetime(2026, 11, 26, 7, 0, 5, tzinfo=UTC)

    changed = update_each(
        Delivery,
        ("sent_at", "subject"),
        {d.id: (sent_at, f"digest {n}") for n, d in enumerate(deliveries)},
        same={"status": Delivery.Status.SENT, "next_attempt_at": None, "last_error": ""},
        where={"status": Delivery.Status.SENDING, "claimed_at": CLAIMED},
    )

    assert changed == 2
    rows = {d.id: (d.status, d.sent_at, d.subject) for d in Delivery.objects.all()}
    assert rows == {
        first.id: ("sent", sent_at, "digest 0"),
        second.id: ("sent", sent_at, "digest 1"),
        reclaimed.id: ("sending", None, ""),
    }


def test_update_each_by_another_key_and_only_where_unset_leaves_set_rows_alone(deliveries):
    first, second, _ = deliveries
    earlier = CLAIMED - timedelta(hours=1)
    Delivery.objects.filter(id=second.id).update(sent_at=earlier)

    changed = update_each(
        Delivery,
        ("sent_at",),
        {first.subscriber_id: (CLAIMED,), second.subscriber_id: (CLAIMED,)},
        key="subscriber",
        only_unset=True,
    )

    assert changed == 1
    assert Delivery.objects.get(id=first.id).sent_at == CLAIMED
    assert Delivery.objects.get(id=second.id).sent_at == earlier


def test_insert_rows_stores_what_bulk_create_would_and_skips_conflicts(deliveries):
    subscriber = deliveries[0].subscriber
    other = Subscriber.objects.create(email="other@example.org", status=Subscriber.Status.ACTIVE)
    rows = [
        {"subscriber_id": subscriber.id, "period": "2026-11-27", "scheduled_for": CLAIMED, "queued_at": CLAIMED},
        {
            "subscriber_id": subscriber.id,
            "period": "2026-11-26",
            "scheduled_for": CLAIMED,
            "queued_at": CLAIMED,
        },  # exists
    ]

    inserted = insert_rows(Delivery, rows, ignore_conflicts=True, returning=("id", "period"))
    Delivery.objects.bulk_create([Delivery(**rows[0] | {"subscriber_id": other.id})])

    by_sql = Delivery.objects.get(subscriber=subscriber, period="2026-11-27")
    assert inserted == [(by_sql.id, "2026-11-27")]  # only the row this call inserted
    by_orm = Delivery.objects.get(subscriber=other, period="2026-11-27")
    for field in Delivery._meta.concrete_fields:
        if field.name not in ("id", "subscriber", "created_at"):
            assert getattr(by_sql, field.attname) == getattr(by_orm, field.attname), field.name
    assert abs(by_sql.created_at - by_orm.created_at).total_seconds() < 5
    assert Delivery.objects.filter(subscriber=subscriber).count() == 2  # the existing period kept, once
    assert Delivery.objects.filter(queued_at=CLAIMED).count() == 2  # stored in the ORM's format, so found by it


def test_insert_rows_without_ignoring_conflicts_raises_on_one(deliveries):
    from django.db import IntegrityError, transaction

    row = {"subscriber_id": deliveries[0].subscriber_id, "period": "2026-11-26", "scheduled_for": CLAIMED}
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(Delivery, [row])


def test_insert_rows_splits_many_rows_into_statements_the_database_takes(db):
    subscribers = Subscriber.objects.bulk_create(Subscriber(email=f"r{n}@example.org") for n in range(150))
    insert_rows(Delivery, [{"subscriber_id": s.id, "period": "p", "scheduled_for": CLAIMED} for s in subscribers])
    assert Delivery.objects.filter(period="p").count() == 150


def test_insert_or_add_creates_the_row_then_adds_to_it(db):
    minute, other = datetime(2026, 11, 26, 7, 1, tzinfo=UTC), datetime(2026, 11, 26, 7, 2, tzinfo=UTC)
    insert_or_add(SendTally, {"minute": minute}, {"tried": 3, "message_refusals": 1})
    insert_or_add(SendTally, {"minute": minute}, {"tried": 4, "message_refusals": 0})
    insert_or_add(SendTally, {"minute": other}, {"tried": 1, "message_refusals": 1})

    rows = SendTally.objects.order_by("minute").values_list("minute", "tried", "message_refusals")
    assert list(rows) == [(minute, 7, 1), (other, 1, 1)]


def test_insert_for_each_links_each_matching_row_once_as_bulk_create_would(db):
    feed = Feed.objects.create(url="https://rss.arxiv.org/rss/cs.LG")
    by_guid, by_arxiv_id, other = (
        Paper.objects.create(guid="2611.00001", arxiv_id="2611.00001", title="a"),
        Paper.objects.create(guid="urn:hf:2", arxiv_id="2611.00002", title="b"),
        Paper.objects.create(guid="urn:hf:3", title="c"),
    )
    link = {"feed": feed.pk, "first_seen": CLAIMED}
    wanted = {"guid": ["2611.00001", "missing"], "arxiv_id": ["2611.00002"]}

    insert_for_each(PaperSource, "paper", link, Paper, wanted)
    insert_for_each(PaperSource, "paper", link, Paper, wanted)  # the second time conflicts, and skips
    insert_for_each(PaperSource, "paper", link, Paper, {"guid": [], "arxiv_id": []})  # nothing to match

    rows = PaperSource.objects.order_by("paper_id").values_list("paper_id", "feed_id", "first_seen")
    assert list(rows) == [(by_guid.id, feed.id, CLAIMED), (by_arxiv_id.id, feed.id, CLAIMED)]
    assert not PaperSource.objects.filter(paper=other).exists()
    assert PaperSource.objects.filter(first_seen=CLAIMED).count() == 2  # stored in the ORM's format, so found by it


@pytest.mark.postgres
def test_asynchronous_commits_last_as_long_as_the_block(on_postgres):
    from django.db import connection

    def synchronous_commit() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    before = synchronous_commit()
    with asynchronous_commits():
        assert synchronous_commit() == "off"
    assert synchronous_commit() == before != "off"


PAPER_VALUES = ("title", "authors", "categories", "published", "num_comments")


def paper_values(paper: Paper) -> tuple:
    return Paper.objects.filter(id=paper.id).values_list(*PAPER_VALUES).get()


@pytest.mark.postgres
def test_rows_unless_held_reads_only_rows_new_to_the_caller_or_changed(on_postgres):
    kept = Paper.objects.create(
        guid="a", title="Kept", authors=[{"name": "Ada"}], categories=["cs.LG"], published=CLAIMED
    )
    changed = Paper.objects.create(guid="b", title="Before", authors=["Bo"])
    gone = Paper.objects.create(guid="c", title="Gone")
    ids = [kept.id, changed.id, gone.id]

    first = {key: (version, values) for key, version, values in rows_unless_held(Paper, ids, PAPER_VALUES, {})}
    assert {key: values for key, (_, values) in first.items()} == {key: paper_values(Paper(id=key)) for key in ids}
    held = {key: version for key, (version, _) in first.items()}

    Paper.objects.filter(id=changed.id).update(title="After")  # in the same transaction as the first write
    Paper.objects.filter(id=changed.id).update(title="After again")
    gone.delete()
    again = {key: values for key, _, values in rows_unless_held(Paper, ids, PAPER_VALUES, held)}

    assert again == {kept.id: None, changed.id: paper_values(changed)}
    assert again[changed.id][0] == "After again"


def test_ids_among_finds_what_the_orm_filter_finds(deliveries):
    ids = [d.subscriber_id for d in deliveries]
    Subscriber.objects.filter(id=ids[1]).update(status=Subscriber.Status.UNSUBSCRIBED)
    listed = [*ids, max(ids) + 1]

    found = ids_among(Subscriber, listed, status=Subscriber.Status.ACTIVE)

    assert found == set(
        Subscriber.objects.filter(id__in=listed, status=Subscriber.Status.ACTIVE).values_list("id", flat=True)
    )
    assert found == {ids[0], ids[2]}
    assert ids_among(Subscriber, [], status=Subscriber.Status.ACTIVE) == set()


def test_rows_above_highest_gives_each_keys_bound_and_only_the_rows_above_it(deliveries):
    first, second, third = deliveries
    papers = [Paper.objects.create(guid=f"urn:p{n}", title=f"Paper {n}") for n in range(3)]
    made = [
        Candidate.objects.create(subscriber=subscriber, paper=paper, score=1, reason="r")
        for subscriber in (first.subscriber, second.subscriber)
        for paper in papers
    ]
    Delivery.objects.filter(id=first.id).update(candidates_through=made[1].id)

    rows = rows_above_highest(
        Candidate,
        ("paper",),
        "subscriber",
        [first.subscriber_id, second.subscriber_id, third.subscriber_id],
        Delivery,
        "candidates_through",
    )

    assert sorted(rows, key=lambda row: (row[0], row[2] or 0)) == [
        (first.subscriber_id, made[1].id, made[2].id, papers[2].id),
        *[(second.subscriber_id, 0, c.id, c.paper_id) for c in made[3:]],
        (third.subscriber_id, 0, None, None),
    ]


def test_related_values_gives_each_rows_related_values_in_the_orms_order(db):
    topics = [
        Topic.objects.create(slug=slug, name=name, position=position)
        for slug, name, position in [("b", "Beta", 2), ("a", "Alpha", 2), ("z", "Zeta", 1)]
    ]
    reader, other, none = (
        Subscriber.objects.create(email=f"{name}@example.org", status=Subscriber.Status.ACTIVE)
        for name in ("reader", "other", "none")
    )
    reader.topics.add(*topics)
    other.topics.add(topics[0])

    found = related_values(Subscriber._meta.get_field("topics"), [reader.id, other.id, none.id], "name")

    assert found == {s.id: [t.name for t in s.topics.all()] for s in (reader, other)}
    assert found[reader.id] == ["Zeta", "Alpha", "Beta"]
    assert related_values(Subscriber._meta.get_field("topics"), [], "name") == {}


def test_insert_columns_stores_text_and_numbers_exactly_as_given(db):
    subscriber = Subscriber.objects.create(email="reader@example.org", status=Subscriber.Status.ACTIVE)
    papers = Paper.objects.bulk_create(
        Paper(arxiv_id=f"2611.{n:05d}", guid=f"g{n}", title=f"Paper {n}", url=f"https://arxiv.org/abs/{n}")
        for n in range(4)
    )
    reasons = ['matches "LLM", {agents}', "back\\slash, NULL", "", "ünïcode ‘quotes’\ttab"]
    scores = [0.1 + 0.2, 1e-05, 12345.6789, -0.0]
    insert_columns(
        Candidate,
        {
            "subscriber": [subscriber.id] * 4,
            "paper": [paper.id for paper in papers],
            "score": scores,
            "relevance": [0.5, 0.25, 1.0, 0.0],
            "reason": reasons,
            "unstored": [0, 0, 0, 7],
        },
        ignore_conflicts=True,
    )
    stored = list(Candidate.objects.order_by("paper_id").values_list("reason", "score", "unstored"))
    assert stored == list(zip(reasons, scores, [0, 0, 0, 7], strict=True))
    assert stored[0][1] == 0.30000000000000004  # the same double, not a rounded text of it


def test_lock_for_key_share_returns_the_rows_still_there():
    kept = Subscriber.objects.create(email="kept@example.org")
    assert lock_for_key_share(Subscriber, [kept.id, kept.id + 1000, kept.id]) == {kept.id}
    assert lock_for_key_share(Subscriber, []) == set()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_locked_for_key_share_can_be_updated_but_not_deleted_until_the_commit(on_postgres):
    reader = Subscriber.objects.create(email="ada@example.org", status="active")
    done: dict = {}
    with transaction.atomic():
        assert lock_for_key_share(Subscriber, [reader.id]) == {reader.id}
        paused = in_thread(lambda: Subscriber.objects.filter(id=reader.id).update(status="paused"), done, "paused")
        paused.join(5)
        assert done == {"paused": 1}
        erased = in_thread(lambda: Subscriber.objects.filter(id=reader.id).delete(), done, "erased")
        erased.join(0.5)
        assert erased.is_alive(), "the deletion should wait for the key-share lock"
    erased.join(5)
    assert not Subscriber.objects.filter(id=reader.id).exists()
