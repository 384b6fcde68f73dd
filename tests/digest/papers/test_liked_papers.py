from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from digest.matching import embedding, reader_model
from digest.matching.feedback import apply_feedback
from digest.matching.runs import clear_index_cache, match_chunk, match_recent_papers, start_match_run
from digest.models import Candidate, Feed, LikedPaper, Paper, ReaderModel
from digest.papers.archive import trending_this_week
from digest.papers.ingestion import ingest_document
from digest.papers.liked_papers import (
    add_liked_papers,
    arxiv_ids_url,
    arxiv_title_url,
    fetch_waiting_papers,
    liked_list,
    remove_liked_paper,
)
from subscribers.liked_input import LikedInput, LikedInputError, parse_liked_text
from tests.support.broker import queued_tasks
from tests.support.digest_samples import make_paper, make_subscriber
from tests.support.feed_server import FeedServer, Route

pytestmark = pytest.mark.django_db

CAPTURE = "arxiv_api_atom_2026-04-30_cat-cs.LG-OR-cs.AI_max20_20entries.xml"
IN_CAPTURE = ("2604.26942", "2604.26951")  # two of the capture's 20 papers
TIDE = "Turning the TIDE: Cross-Architecture Distillation for Diffusion Large Language Models"
UNKNOWN = "2604.99999"
State = LikedPaper.State


def answer(server: FeedServer, url: str, route: Route) -> None:
    server.routes[url.removeprefix(server.base)] = route


def states(subscriber) -> dict[str, str]:
    return {row.arxiv_id or row.title: row.state for row in LikedPaper.objects.filter(subscriber=subscriber)}


def later(hours: float = 25):
    return timezone.now() + timedelta(hours=hours)


# --- adding and removing ----------------------------------------------------------------------


def test_a_paper_we_hold_is_linked_at_once_and_others_wait():
    subscriber = make_subscriber()
    held = make_paper(1, "Neural Fields in Visual Computing", "An abstract.")
    outcome = add_liked_papers(subscriber, parse_liked_text(f"{held.arxiv_id}v2\n{UNKNOWN}"))
    assert (outcome.known, outcome.waiting, outcome.already) == (1, 1, 0)
    rows = liked_list(subscriber)
    assert [(row.paper, row.arxiv_id, row.state) for row in rows] == [
        (held, held.arxiv_id, State.KNOWN),
        (None, UNKNOWN, State.WAITING),
    ]


def test_a_title_finds_the_stored_paper_whatever_its_case_and_spacing():
    subscriber = make_subscriber()
    held = make_paper(1, "Neural Fields in Visual Computing", "An abstract.")
    add_liked_papers(subscriber, LikedInput(titles=("neural  fields in VISUAL computing",)))
    assert [row.paper for row in liked_list(subscriber)] == [held]


def test_adding_the_same_papers_again_adds_nothing():
    subscriber = make_subscriber()
    held = make_paper(1, "Neural Fields in Visual Computing", "An abstract.")
    add_liked_papers(subscriber, LikedInput(arxiv_ids=(held.arxiv_id, UNKNOWN)))
    again = add_liked_papers(subscriber, LikedInput(arxiv_ids=(UNKNOWN,), titles=(held.title,)))
    assert (again.added, again.already) == (0, 2)
    assert LikedPaper.objects.count() == 2


def test_over_the_limit_nothing_is_saved(settings):
    settings.LIKED_MAX_PAPERS = 3
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(arxiv_ids=("2604.00001", "2604.00002")))
    with pytest.raises(LikedInputError, match="can hold 3 papers; it has 2, and this adds 2"):
        add_liked_papers(subscriber, LikedInput(arxiv_ids=("2604.00003", "2604.00004")))
    assert LikedPaper.objects.count() == 2


def test_a_subscriber_removes_only_their_own_rows():
    ada, bob = make_subscriber(), make_subscriber("bob@example.org")
    add_liked_papers(ada, LikedInput(arxiv_ids=(UNKNOWN,)))
    [row] = liked_list(ada)
    assert remove_liked_paper(bob, row.pk) is False
    assert remove_liked_paper(ada, row.pk + 1000) is False
    assert LikedPaper.objects.count() == 1
    assert remove_liked_paper(ada, row.pk) is True
    assert LikedPaper.objects.count() == 0


# --- fetching from the arXiv API ---------------------------------------------------------------


def test_waiting_ids_are_fetched_stored_and_linked_and_an_unknown_id_ends_not_found(arxiv, shared_feed):
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(arxiv_ids=(*IN_CAPTURE, UNKNOWN)))
    url = arxiv_ids_url(sorted((*IN_CAPTURE, UNKNOWN)))
    answer(arxiv, url, Route(body=shared_feed(CAPTURE).read_bytes(), headers={"Content-Type": "application/atom+xml"}))

    first = fetch_waiting_papers()

    assert (first.requests, first.found, first.not_found, first.failed) == (1, 2, 0, 0)
    assert arxiv.requests[0][0] == "/api/query?id_list=2604.26942%2C2604.26951%2C2604.99999&max_results=3"
    assert states(subscriber) == {IN_CAPTURE[0]: "known", IN_CAPTURE[1]: "known", UNKNOWN: "waiting"}
    assert Paper.objects.get(arxiv_id=IN_CAPTURE[1]).title == TIDE
    # arXiv's answer did not hold the unknown id: asked once more, later, then given up on.
    answer(arxiv, arxiv_ids_url([UNKNOWN]), Route(body=shared_feed(CAPTURE).read_bytes()))
    assert fetch_waiting_papers().requests == 0
    second = fetch_waiting_papers(now=later())
    assert (second.requests, second.not_found) == (1, 1)
    row = LikedPaper.objects.get(arxiv_id=UNKNOWN)
    assert (row.state, row.next_fetch_at, row.last_error) == (
        State.NOT_FOUND,
        None,
        f"arXiv has no paper with id {UNKNOWN}",
    )
    assert fetch_waiting_papers(now=later(100)).requests == 0


def test_liked_papers_fetched_later_train_the_readers_model(arxiv, shared_feed, django_capture_on_commit_callbacks):
    """A model needs a click and two examples: one "more" click alone is too few, and the liked
    papers count only once their text has been fetched; the re-match that follows retrains it."""
    subscriber = make_subscriber()
    apply_feedback(subscriber, make_paper(1, "Neural Fields in Visual Computing", "An abstract."), "more")
    add_liked_papers(subscriber, LikedInput(arxiv_ids=IN_CAPTURE))
    assert not ReaderModel.objects.filter(subscriber=subscriber).exists()
    url = arxiv_ids_url(sorted(IN_CAPTURE))
    answer(arxiv, url, Route(body=shared_feed(CAPTURE).read_bytes(), headers={"Content-Type": "application/atom+xml"}))

    with django_capture_on_commit_callbacks(execute=True):  # the re-match the fetch queues
        fetch_waiting_papers()

    model = ReaderModel.objects.get(subscriber=subscriber)
    assert (model.positives, model.from_liked, model.from_clicks) == (3, True, True)
    # It learned from the liked papers: it scores each above a paper on another subject.
    weights = np.frombuffer(bytes(model.weights), dtype=reader_model.WEIGHT_DTYPE)
    liked = Paper.objects.filter(arxiv_id__in=IN_CAPTURE)
    vectors = embedding.encode([embedding.embedding_text(paper.title, paper.abstract) for paper in liked])
    elsewhere = embedding.encode(["Dark matter halos of galaxy clusters, weighed by gravitational lensing."])[0]
    assert len(vectors) == len(IN_CAPTURE) and (vectors @ weights > elsewhere @ weights).all()


def test_papers_fetched_for_liked_lists_have_their_vectors_queued_once(arxiv, shared_feed, filesystem_queue, committed):
    """Their sentence vectors are encoded ahead by a worker, as a feed's papers are: the reader's
    next match reads them instead of encoding them itself."""
    subscriber = make_subscriber()
    with committed():
        add_liked_papers(subscriber, LikedInput(arxiv_ids=IN_CAPTURE))
    assert [name for name, _ in queued_tasks()] == ["digest.fetch_liked_papers"]
    answer(
        arxiv,
        arxiv_ids_url(sorted(IN_CAPTURE)),
        Route(body=shared_feed(CAPTURE).read_bytes(), headers={"Content-Type": "application/atom+xml"}),
    )

    with committed():
        fetch_waiting_papers()

    fetched = Paper.objects.filter(fetched_for_liked=True)
    assert set(fetched.filter(arxiv_id__in=IN_CAPTURE).values_list("arxiv_id", flat=True)) == set(IN_CAPTURE)
    queued = queued_tasks()
    others = [(name, args) for name, args in queued if name != "digest.store_paper_vectors"]
    assert others == [("digest.match_recent_papers", [subscriber.pk])]  # the reader's re-match, as before
    queued_ids = [
        paper_id for name, (paper_ids,) in queued if name == "digest.store_paper_vectors" for paper_id in paper_ids
    ]
    assert sorted(queued_ids) == sorted(fetched.values_list("id", flat=True))  # each once


def test_an_http_error_changes_nothing_but_the_next_attempt(arxiv, shared_feed):
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(arxiv_ids=(IN_CAPTURE[0],)))
    answer(arxiv, arxiv_ids_url([IN_CAPTURE[0]]), Route(status=503, body=b"busy"))

    for attempt in range(1, 5):
        outcome = fetch_waiting_papers(now=later(24 * attempt))
        assert (outcome.failed, outcome.not_found) == (1, 0)
    row = LikedPaper.objects.get()
    assert (row.state, row.fetch_attempts) == (State.WAITING, 4)
    assert "HTTP 503" in row.last_error
    assert row.next_fetch_at > later(24 * 4)

    answer(arxiv, arxiv_ids_url([IN_CAPTURE[0]]), Route(body=shared_feed(CAPTURE).read_bytes()))
    assert fetch_waiting_papers(now=later(24 * 6)).found == 1
    assert states(subscriber) == {IN_CAPTURE[0]: "known"}


@pytest.mark.parametrize(
    "capture_or_body",
    ["arxiv_api_atom_2026-04-12_idlist-abc_HTTP400_error.xml", "cut off", "<html><body>Rate limited</body></html>"],
)
def test_an_error_or_malformed_answer_is_retried_not_taken_for_not_found(arxiv, shared_feed, capture_or_body):
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(arxiv_ids=(UNKNOWN,)))
    if capture_or_body.endswith(".xml"):
        body = shared_feed(capture_or_body).read_bytes()
    elif capture_or_body == "cut off":
        body = shared_feed(CAPTURE).read_bytes()[:5000]
    else:
        body = capture_or_body.encode()
    answer(arxiv, arxiv_ids_url([UNKNOWN]), Route(body=body))

    for attempt in range(1, 4):
        assert fetch_waiting_papers(now=later(24 * attempt)).failed == 1
    row = LikedPaper.objects.get()
    assert (row.state, row.fetch_attempts) == (State.WAITING, 3)
    assert row.last_error


def test_a_waiting_title_is_searched_on_arxiv_and_linked(arxiv, shared_feed):
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(titles=(TIDE.upper(),)))
    answer(arxiv, arxiv_title_url(TIDE.upper()), Route(body=shared_feed(CAPTURE).read_bytes()))
    assert fetch_waiting_papers().found == 1
    [row] = liked_list(subscriber)
    assert (row.state, row.paper.title, row.arxiv_id) == (State.KNOWN, TIDE, IN_CAPTURE[1])


def test_a_paper_liked_twice_by_id_and_title_keeps_one_row(arxiv, shared_feed):
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(arxiv_ids=(IN_CAPTURE[1],), titles=(TIDE,)))
    body = Route(body=shared_feed(CAPTURE).read_bytes())
    answer(arxiv, arxiv_ids_url([IN_CAPTURE[1]]), body)
    answer(arxiv, arxiv_title_url(TIDE), body)
    fetch_waiting_papers()
    assert [(row.arxiv_id, row.state) for row in liked_list(subscriber)] == [(IN_CAPTURE[1], State.KNOWN)]


def test_a_claimed_row_is_not_fetched_by_a_second_run_at_once(arxiv):
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(arxiv_ids=(UNKNOWN,)))
    LikedPaper.objects.update(next_fetch_at=timezone.now() - timedelta(minutes=1))
    assert fetch_waiting_papers().requests == 1
    assert fetch_waiting_papers().requests == 0


def test_a_paper_a_feed_brought_meanwhile_is_linked_without_asking_arxiv(arxiv):
    subscriber = make_subscriber()
    add_liked_papers(subscriber, LikedInput(arxiv_ids=(UNKNOWN,)))
    Paper.objects.create(arxiv_id=UNKNOWN, guid=UNKNOWN, title="Arrived by RSS")
    outcome = fetch_waiting_papers()
    assert (outcome.requests, outcome.found) == (0, 1)
    assert [row.paper.title for row in liked_list(subscriber)] == ["Arrived by RSS"]
    assert arxiv.requests == []


# --- papers fetched for a liked list are that reader's signal, not news --------------------------


def liked_tide_fetched(arxiv, shared_feed, reader) -> Paper:
    """`reader` likes TIDE (2604.26951), which we do not hold: the fetch task stores it from arXiv."""
    add_liked_papers(reader, LikedInput(arxiv_ids=(IN_CAPTURE[1],)))
    answer(arxiv, arxiv_ids_url([IN_CAPTURE[1]]), Route(body=shared_feed(CAPTURE).read_bytes()))
    assert fetch_waiting_papers().found == 1
    return Paper.objects.get(arxiv_id=IN_CAPTURE[1])


@pytest.fixture(autouse=True)
def _fresh_index_cache():
    clear_index_cache()  # run ids repeat from one test to the next
    yield
    clear_index_cache()


def match_and_send() -> dict[str, str]:
    """The next match run, then everyone's digest: each reader's email body by address."""
    plan = start_match_run()
    assert plan is not None
    for chunk in plan.chunks:
        match_chunk(plan.run_id, chunk)
    call_command("senddigests", "--now", stdout=StringIO(), stderr=StringIO())
    return {message.to[0]: message.body for message in mail.outbox}


def test_a_paper_fetched_for_one_readers_liked_list_is_in_nobodys_next_digest(arxiv, shared_feed):
    ada = make_subscriber("ada@example.org", keywords="distillation")
    bob = make_subscriber("bob@example.org", keywords="distillation")
    tide = liked_tide_fetched(arxiv, shared_feed, ada)
    # The capture's other papers came with the answer: none of them is news either.
    assert Paper.objects.filter(fetched_for_liked=True).count() == 20 and tide.fetched_for_liked
    new = make_paper(1, "Progressive Distillation of Diffusion Samplers", "Distillation halves the steps.")

    digests = match_and_send()

    assert new.title in digests[bob.email] and new.title in digests[ada.email]
    assert TIDE not in digests[bob.email] and TIDE not in digests[ada.email]
    assert not Candidate.objects.filter(paper__fetched_for_liked=True).exists()
    # Nor to a reader who signs up now and is matched against the last days' papers.
    cy = make_subscriber("cy@example.org", keywords="distillation")
    match_recent_papers(cy.id)
    assert [c.paper for c in Candidate.objects.filter(subscriber=cy)] == [new]
    assert TIDE not in [p.title for p in trending_this_week(limit=50)]


def test_a_paper_fetched_for_a_liked_list_that_a_feed_then_carries_is_news(arxiv, shared_feed):
    ada = make_subscriber("ada@example.org", keywords="interpretability")
    bob = make_subscriber("bob@example.org", keywords="distillation")
    tide = liked_tide_fetched(arxiv, shared_feed, ada)
    feed = Feed.objects.create(url="https://export.arxiv.org/api/query?search_query=cat:cs.LG", name="cs.LG")
    ingest_document(shared_feed(CAPTURE).read_bytes(), feed.url, feed)

    tide.refresh_from_db()
    assert not tide.fetched_for_liked
    assert TIDE in match_and_send()[bob.email]
