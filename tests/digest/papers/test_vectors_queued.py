"""Storing papers queues their sentence vectors (digest/papers/paper_store.py): whichever path
stored them, once per new text, once the storing commits, and nothing for a text already seen.

The queue is the real filesystem broker (`make run`'s); nothing runs the queued tasks.
"""

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from digest.models import Feed, Paper
from digest.papers.feed_parsing import ParsedPaper
from digest.papers.ingestion import ingest_document
from digest.papers.paper_store import PAPERS_PER_TASK, store_papers
from digest.tasks.ingest import ingest_feeds
from digest.tasks.polling import poll_feed
from tests.support.broker import queued_tasks

pytestmark = pytest.mark.django_db

RSS = "arxiv_rss2_2026-04-27_cs.LG_trimmed_3items.xml"


@pytest.fixture(autouse=True)
def _really_queued(filesystem_queue):
    """Tasks go to a broker instead of running here."""


def queued_paper_ids() -> Counter[int]:
    """How many times each paper waits in the queue for its vector; nothing else may wait."""
    taken = queued_tasks()
    assert {name for name, _ in taken} <= {"digest.store_paper_vectors"}
    return Counter(paper_id for _, (paper_ids,) in taken for paper_id in paper_ids)


def beat_ingest_task(source: str) -> None:
    ingest_feeds()


def admin_poll_now(source: str) -> None:
    poll_feed(Feed.objects.get_or_create(url=source)[0].pk)


def ingest_command(source: str) -> None:
    call_command("ingest", stdout=StringIO())


def ingest_command_with_a_source(source: str) -> None:
    call_command("ingest", source, stdout=StringIO())


def pollfeeds_command(source: str) -> None:
    call_command("pollfeeds", stdout=StringIO())


PATHS = [beat_ingest_task, admin_poll_now, ingest_command, ingest_command_with_a_source, pollfeeds_command]


@pytest.mark.parametrize("ingest", PATHS, ids=[path.__name__ for path in PATHS])
def test_each_ingestion_path_queues_each_new_text_once_and_an_unchanged_one_never(
    ingest, settings, shared_feed, committed
):
    source = str(shared_feed(RSS))
    settings.FEEDS = [source]

    with committed():
        ingest(source)
    papers = list(Paper.objects.order_by("id"))
    assert len(papers) == 3
    assert queued_paper_ids() == Counter(paper.id for paper in papers)

    with committed():
        ingest(source)  # the same papers again
    assert queued_paper_ids() == Counter()

    # The feed may write text only where the row has none (not arXiv's own host): it fills it again.
    Paper.objects.filter(pk=papers[1].pk).update(abstract="")
    with committed():
        ingest(source)
    assert queued_paper_ids() == Counter({papers[1].id: 1})


def test_loadseeds_queues_the_62_seed_papers_once_and_a_second_load_nothing(committed):
    with committed():
        call_command("loadseeds", stdout=StringIO())
    assert queued_paper_ids() == Counter(Paper.objects.values_list("id", flat=True))
    assert Paper.objects.count() == 62

    with committed():
        call_command("loadseeds", stdout=StringIO())  # `make run`, every start after the first
    assert queued_paper_ids() == Counter()


def test_new_votes_or_links_queue_nothing_and_a_new_title_queues_that_paper(committed):
    with committed():
        store_papers([ParsedPaper(guid="urn:a", title="A title", abstract="An abstract.", upvotes=1)])
    [paper] = Paper.objects.all()
    assert queued_paper_ids() == Counter({paper.id: 1})

    with committed():
        store_papers([ParsedPaper(guid="urn:a", title="A title", upvotes=9, code_url="https://github.com/a/b")])
    assert queued_paper_ids() == Counter()

    with committed():
        store_papers([ParsedPaper(guid="urn:a", title="A new title", version=2)], from_arxiv=True)
    assert queued_paper_ids() == Counter({paper.id: 1})


def test_a_large_batch_is_split_into_tasks_of_papers_per_task(committed):
    count = 2 * PAPERS_PER_TASK + 1
    with committed():
        store_papers([ParsedPaper(guid=f"urn:{n}", title=f"Paper {n}") for n in range(count)])
    sizes = sorted(len(paper_ids) for _, (paper_ids,) in queued_tasks())  # the folder keeps no order
    assert sizes == [1, PAPERS_PER_TASK, PAPERS_PER_TASK]


def test_a_feed_over_the_entry_cap_queues_vectors_for_the_papers_under_it_only(settings, committed):
    settings.FEED_MAX_ENTRIES = 2 * PAPERS_PER_TASK
    items = "".join(f"<item><guid>urn:h:{n}</guid><title>T {n}</title></item>" for n in range(3 * PAPERS_PER_TASK))
    body = f'<rss version="2.0"><channel><title>Many</title>{items}</channel></rss>'.encode()
    with committed():
        report = ingest_document(body, "https://example.org/many", Feed.objects.create(url="https://example.org/many"))
    assert report.skipped_over_cap == PAPERS_PER_TASK
    assert queued_paper_ids() == Counter(Paper.objects.values_list("id", flat=True))
    assert Paper.objects.count() == 2 * PAPERS_PER_TASK


def test_papers_stored_in_a_transaction_that_rolls_back_queue_nothing(committed):
    with committed(), pytest.raises(RuntimeError), transaction.atomic():
        store_papers([ParsedPaper(guid="urn:a", title="A title")])
        raise RuntimeError("the caller fails after storing")
    assert not Paper.objects.exists()
    assert queued_paper_ids() == Counter()
