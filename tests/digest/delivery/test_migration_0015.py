"""Migration 0015 replaces each candidate's `delivery` with an id range on its Delivery: every digest
must hold exactly the candidates it held before, and the waiting ones must still be waiting.

Each test migrates the database back to 0014, writes rows through the models of that state,
migrates forward and reads the result through today's readers (`Delivery.candidates`,
`claims.is_waiting`); the database is migrated to the latest state again whatever happens.
"""

from datetime import UTC, datetime

import pytest

from digest.delivery.claims import is_waiting
from digest.models import Candidate, Delivery, Paper
from tests.support.migrations import apps_at, migrate_through

BEFORE = ("digest", "0014_merge_pgsend")
AFTER = ("digest", "0015_delivery_candidate_range")
SCHEDULED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def old_apps():
    """The apps as they were at 0014, on a database migrated back to it."""
    with apps_at(BEFORE) as apps_then:
        yield apps_then


def migrate_to_0015() -> None:
    migrate_through(AFTER)


class OldRows:
    """Subscribers, their digests and their candidates, written through the 0014 models.

    Candidates are created one at a time, so their ids follow the order of the calls.
    """

    def __init__(self, apps) -> None:
        self.Subscriber = apps.get_model("subscribers", "Subscriber")
        self.Paper = apps.get_model("digest", "Paper")
        self.Delivery = apps.get_model("digest", "Delivery")
        self.Candidate = apps.get_model("digest", "Candidate")
        self.papers = 0

    def subscriber(self, name: str):
        return self.Subscriber.objects.create(email=f"{name}@example.org", status="active")

    def digest(self, subscriber, period: str, status: str = "sent"):
        return self.Delivery.objects.create(
            subscriber=subscriber, period=period, status=status, scheduled_for=SCHEDULED
        )

    def candidate(self, subscriber, delivery=None):
        self.papers += 1
        arxiv_id = f"2611.{self.papers:05d}"
        paper = self.Paper.objects.create(arxiv_id=arxiv_id, guid=arxiv_id, title=f"Paper {self.papers}")
        return self.Candidate.objects.create(
            subscriber=subscriber, paper=paper, delivery=delivery, score=1.0, reason="matched"
        )

    def history(self, subscriber, labels: str) -> None:
        """Candidates in the order of `labels`: a letter is the digest of that period that took the
        candidate, "w" a candidate still waiting; e.g. "AAwA"."""
        digests = {
            label: self.digest(subscriber, f"2026-11-0{n}") for n, label in enumerate(sorted(set(labels) - {"w"}), 1)
        }
        for label in labels:
            self.candidate(subscriber, digests.get(label))

    def held(self) -> tuple[dict[int, set[tuple[int, int]]], set[tuple[int, int]]]:
        """What each digest holds and what is waiting, by (subscriber, paper): ids may change."""
        holding: dict[int, set[tuple[int, int]]] = {d.id: set() for d in self.Delivery.objects.all()}
        waiting = set()
        for subscriber_id, paper_id, delivery_id in self.Candidate.objects.values_list(
            "subscriber_id", "paper_id", "delivery_id"
        ):
            (waiting if delivery_id is None else holding[delivery_id]).add((subscriber_id, paper_id))
        return holding, waiting


def held_now() -> tuple[dict[int, set[tuple[int, int]]], set[tuple[int, int]]]:
    holding = {d.id: set(d.candidates.values_list("subscriber_id", "paper_id")) for d in Delivery.objects.all()}
    waiting = set(Candidate.objects.filter(is_waiting()).values_list("subscriber_id", "paper_id"))
    return holding, waiting


def test_each_digest_holds_what_it_was_given_and_waiting_candidates_still_wait(old_apps):
    rows = OldRows(old_apps)
    ada, bob = rows.subscriber("ada"), rows.subscriber("bob")
    first, failed = rows.digest(ada, "2026-11-24"), rows.digest(ada, "2026-11-25", "failed")
    bobs = rows.digest(bob, "2026-11-24")
    # Two subscribers' candidates take turns in the id sequence, as a match run writes them.
    ada_first = [rows.candidate(ada, first), rows.candidate(bob, bobs), rows.candidate(ada, first)]
    second = rows.digest(ada, "2026-11-26")
    ada_second = [rows.candidate(ada, second), rows.candidate(ada, second)]
    waiting = [rows.candidate(ada), rows.candidate(bob), rows.candidate(ada)]
    queued = rows.digest(ada, "2026-11-27", "queued")
    before = rows.held()

    migrate_to_0015()

    assert held_now() == before
    assert {(c.subscriber_id, c.paper_id) for c in waiting} == before[1]
    ranges = {d.id: (d.candidates_after, d.candidates_through) for d in Delivery.objects.all()}
    assert ranges[first.id] == (ada_first[0].id - 1, ada_first[2].id)
    assert ranges[second.id] == (ada_second[0].id - 1, ada_second[1].id)
    assert ranges[failed.id] == ranges[queued.id] == (0, 0)
    assert ranges[bobs.id] == (ada_first[1].id - 1, ada_first[1].id)


def ids_by_paper(subscriber_id: int) -> dict[int, int]:
    return dict(Candidate.objects.filter(subscriber_id=subscriber_id).values_list("paper_id", "id"))


@pytest.mark.parametrize(
    ("labels", "moved"),
    [
        ("AAwA", 1),  # a match committed after the claim of A, with an id taken before it
        ("wAA", 1),  # the same, left waiting below A
        ("ABAB", 4),  # the late one taken by the next digest: A's and B's ranges would overlap
        ("AwBAwB", 6),
        ("AABBw", 0),  # in order
    ],
)
def test_candidates_out_of_id_order_stay_in_their_digest_or_waiting(old_apps, labels, moved):
    rows = OldRows(old_apps)
    ada, bob = rows.subscriber("ada"), rows.subscriber("bob")
    rows.history(ada, labels)
    rows.history(bob, "AABw")
    adas_ids, bobs_ids = ids_by_paper(ada.id), ids_by_paper(bob.id)
    before = rows.held()

    migrate_to_0015()

    assert held_now() == before
    assert sum(ids_by_paper(ada.id)[paper] != old for paper, old in adas_ids.items()) == moved
    assert ids_by_paper(bob.id) == bobs_ids
    # The id sequence went past the moved ids: the next match waits for the next digest.
    paper = Paper.objects.create(arxiv_id="2611.99999", guid="2611.99999", title="Matched after the migration")
    later = Candidate.objects.create(subscriber_id=ada.id, paper=paper, score=1.0, reason="matched")
    assert Candidate.objects.filter(is_waiting(), id=later.id).exists()


def test_the_migration_says_what_it_moved(old_apps, capsys):
    rows = OldRows(old_apps)
    rows.history(rows.subscriber("ada"), "AwBAwB")
    rows.history(rows.subscriber("bob"), "wAA")
    capsys.readouterr()

    migrate_to_0015()

    assert (
        "Moved 7 candidates to new ids, so that each digest's are one id range: those of 2 digest(s)"
        " and the waiting ones of 2 subscriber(s)."
    ) in capsys.readouterr().out
