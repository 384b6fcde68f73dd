import math
import threading

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from digest.matching import runs, vectors
from digest.matching.runs import match_chunk, start_match_run
from digest.models import Candidate, Feed, LikedPaper, MatchChunk, MatchRun, Paper, PaperSource
from digest.tasks.matching import match_chunk as match_chunk_task
from digest.tasks.matching import match_new_papers, match_recent_papers
from subscribers import services
from subscribers.models import Subscriber, Topic
from tests.support.threads import in_thread

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_index_cache():
    runs.clear_index_cache()
    yield
    runs.clear_index_cache()


def make_paper(number, title, abstract="", **fields):
    return Paper.objects.create(
        guid=f"urn:test:{number}", arxiv_id=f"2611.{number:05d}", title=title, abstract=abstract, **fields
    )


def make_subscriber(number, **preferences):
    preferences.setdefault("status", Subscriber.Status.ACTIVE)
    return Subscriber.objects.create(email=f"reader{number}@example.org", **preferences)


def candidates_of(subscriber):
    return sorted(Candidate.objects.filter(subscriber=subscriber).values_list("paper__title", flat=True))


def test_a_run_takes_the_new_papers_and_chunks_the_active_subscribers():
    make_paper(1, "Old paper on diffusion")
    first = start_match_run(chunk_size=2)
    assert first is not None
    for chunk in first.chunks:
        match_chunk(first.run_id, chunk)
    new = make_paper(2, "New paper on diffusion")
    active = [make_subscriber(n, keywords="diffusion") for n in range(5)]
    make_subscriber(99, keywords="diffusion", status=Subscriber.Status.PAUSED)
    plan = start_match_run(chunk_size=2)
    run = MatchRun.objects.get(id=plan.run_id)
    assert (run.first_paper_id, run.last_paper_id, run.papers) == (new.id - 1, new.id, 1)
    assert plan.chunks == [[active[0].id, active[1].id], [active[2].id, active[3].id], [active[4].id]]
    assert run.subscribers == 5 and run.chunks == 3


def test_nothing_new_means_no_run():
    assert start_match_run() is None
    make_paper(1, "A paper")
    plan = start_match_run()
    assert plan.chunks == [] and MatchRun.objects.get(id=plan.run_id).finished_at is not None
    assert start_match_run() is None


def test_a_chunk_stores_candidates_with_score_relevance_and_reason():
    paper = make_paper(1, "Neural fields for video", "We fit a neural field to each video.", upvotes=3)
    reader = make_subscriber(1, keywords='"neural field"')
    plan = start_match_run()
    assert match_chunk(plan.run_id, plan.chunks[0]) == 1
    candidate = Candidate.objects.get()
    assert (candidate.subscriber, candidate.paper) == (reader, paper)
    assert candidate.reason == "Matches your keyword 'neural field'"
    assert candidate.score >= candidate.relevance > 0
    run = MatchRun.objects.get(id=plan.run_id)
    assert run.candidates == 1 and run.chunks_done == 1 and run.finished_at is not None


def test_running_a_chunk_twice_creates_nothing_new():
    make_paper(1, "Diffusion models", "Diffusion.")
    make_paper(2, "More diffusion", "Diffusion again.")
    readers = [make_subscriber(n, keywords="diffusion") for n in range(3)]
    plan = start_match_run()
    assert match_chunk(plan.run_id, plan.chunks[0]) == 6
    runs.clear_index_cache()
    assert match_chunk(plan.run_id, plan.chunks[0]) == 0
    assert Candidate.objects.count() == 6
    assert all(len(candidates_of(reader)) == 2 for reader in readers)


def test_a_paper_is_never_offered_twice_across_runs_and_versions():
    paper = make_paper(1, "Sparse autoencoders", "Interpretability with sparse autoencoders.")
    reader = make_subscriber(1, keywords='"sparse autoencoders"')
    call_command("matchpapers", stdout=None)
    Candidate.objects.filter(subscriber=reader).update(score=0.123)  # as if waiting
    # A new version of the paper updates the same row (ingestion keeps one row per arXiv id)...
    paper.version, paper.abstract = 2, "Revised: interpretability with sparse autoencoders, v2."
    paper.save()
    feed = Feed.objects.create(url="https://example.org/feed")
    PaperSource.objects.create(paper=paper, feed=feed)
    make_paper(2, "Unrelated", "Nothing.")
    call_command("matchpapers", stdout=None)
    # ...and matching everything again (a new source, an operator's --all) does not add a second row.
    call_command("matchpapers", "--all", stdout=None)
    assert Candidate.objects.filter(subscriber=reader, paper=paper).count() == 1
    assert Candidate.objects.get(subscriber=reader).score == pytest.approx(0.123)


def diffusion_paper(number):
    return make_paper(number, f"Diffusion models, part {number}", "Diffusion.")


def diffusion_reader(settings, papers, max_papers):
    """`papers` papers on diffusion and a reader of them whose runs store twice `max_papers`."""
    settings.MATCH_STORE_PER_MAX_PAPERS = 2
    for number in range(1, papers + 1):
        diffusion_paper(number)
    return make_subscriber(1, keywords="diffusion", max_papers=max_papers)


def test_no_run_starts_while_one_is_under_way_so_no_one_gets_a_second_helping(settings):
    reader = diffusion_reader(settings, papers=5, max_papers=1)
    first = start_match_run()
    # Beat's next tick (a run slower than MATCH_EVERY_MINUTES, or ticks queued behind a backlog)
    # comes before the first run's chunks: a second run would store the next-best two.
    assert start_match_run() is None
    for chunk in first.chunks:
        match_chunk(first.run_id, chunk)
    assert start_match_run() is None  # nothing new since the run

    assert Candidate.objects.filter(subscriber=reader).count() == 2
    assert MatchRun.objects.count() == 1
    new = diffusion_paper(6)
    run = MatchRun.objects.get(id=start_match_run().run_id)
    assert (run.first_paper_id, run.last_paper_id) == (new.id - 1, new.id)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_ticks_taken_by_two_workers_at_once_start_one_run(on_postgres):
    make_paper(1, "Diffusion models", "Diffusion.")
    make_subscriber(1, keywords="diffusion")
    deciding, release = threading.Event(), threading.Event()
    plans: dict = {}

    def first_tick_committing_late():
        with transaction.atomic():  # the run's own transaction becomes a savepoint of this one
            plan = start_match_run()
            deciding.set()
            release.wait(10)
        return plan

    first = in_thread(first_tick_committing_late, plans, first_tick_committing_late)
    assert deciding.wait(10)
    second = in_thread(start_match_run, plans, start_match_run)
    second.join(0.5)
    assert second.is_alive(), "the second tick should wait for the match-runs lock"
    release.set()
    first.join(10)
    second.join(10)

    assert plans[first_tick_committing_late] is not None and plans[start_match_run] is None
    assert MatchRun.objects.count() == 1


def test_the_command_says_a_run_is_under_way_and_all_papers_starts_anyway(capsys):
    make_paper(1, "Diffusion models", "Diffusion.")
    make_subscriber(1, keywords="diffusion")
    under_way = start_match_run()
    call_command("matchpapers")
    assert f"Match run {under_way.run_id} is under way" in capsys.readouterr().out
    call_command("matchpapers", "--all")
    assert "1 new candidates" in capsys.readouterr().out


def test_a_run_unfinished_past_the_timeout_has_lost_chunks_and_the_next_run_covers_its_papers(settings):
    settings.MATCH_RUN_TIMEOUT_MINUTES = 60
    make_paper(1, "Diffusion one")
    reader = make_subscriber(1, keywords="diffusion")
    with time_machine.travel("2026-11-20 08:00Z", tick=False):
        unfinished = start_match_run()  # its chunk is lost
    make_paper(2, "Diffusion two")
    with time_machine.travel("2026-11-20 08:59Z", tick=False):
        assert start_match_run() is None
    with time_machine.travel("2026-11-20 09:01Z", tick=False):
        plan = start_match_run()
    run = MatchRun.objects.get(id=plan.run_id)
    assert run.first_paper_id == 0 and run.papers == 2
    match_chunk(plan.run_id, plan.chunks[0])
    assert len(candidates_of(reader)) == 2
    assert MatchRun.objects.get(id=unfinished.run_id).finished_at is None
    make_paper(3, "Diffusion three")
    assert MatchRun.objects.get(id=start_match_run().run_id).first_paper_id == run.last_paper_id


def test_a_chunk_delivered_again_stores_no_second_share_and_does_not_finish_the_run(settings):
    reader = diffusion_reader(settings, papers=5, max_papers=1)
    other = make_subscriber(2, keywords="diffusion", max_papers=1)
    plan = start_match_run(chunk_size=1)
    assert plan.chunks == [[reader.id], [other.id]]
    assert match_chunk(plan.run_id, plan.chunks[0]) == 2
    # The worker died before acknowledging the task: the broker hands it to another worker.
    runs.clear_index_cache()
    assert match_chunk(plan.run_id, plan.chunks[0]) == 0
    assert Candidate.objects.filter(subscriber=reader).count() == 2
    run = MatchRun.objects.get(id=plan.run_id)
    assert (run.chunks_done, run.finished_at) == (1, None)  # the other reader's chunk is still to come
    assert match_chunk(plan.run_id, plan.chunks[1]) == 2
    assert MatchRun.objects.get(id=plan.run_id).finished_at is not None


def test_a_lost_runs_chunk_delivered_after_the_next_run_covered_its_papers_stores_nothing(settings):
    settings.MATCH_RUN_TIMEOUT_MINUTES = 60
    reader = diffusion_reader(settings, papers=5, max_papers=1)
    with time_machine.travel("2026-11-20 08:00Z", tick=False):
        lost = start_match_run()
    with time_machine.travel("2026-11-20 09:01Z", tick=False):
        plan = start_match_run()
        assert match_chunk(plan.run_id, plan.chunks[0]) == 2
    with time_machine.travel("2026-11-20 12:00Z", tick=False):  # past the broker's visibility timeout
        assert match_chunk(lost.run_id, lost.chunks[0]) == 0
    assert Candidate.objects.filter(subscriber=reader).count() == 2


def test_matching_all_papers_supersedes_the_run_under_way_without_blocking_the_next(settings):
    reader = diffusion_reader(settings, papers=5, max_papers=1)
    under_way = start_match_run()
    call_command("matchpapers", "--all", stdout=None)
    assert match_chunk(under_way.run_id, under_way.chunks[0]) == 0
    assert Candidate.objects.filter(subscriber=reader).count() == 2
    new = diffusion_paper(6)
    run = MatchRun.objects.get(id=start_match_run().run_id)
    assert (run.first_paper_id, run.last_paper_id) == (new.id - 1, new.id)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_copies_of_a_chunk_at_once_store_one_share(on_postgres, settings):
    reader = diffusion_reader(settings, papers=5, max_papers=1)
    plan = start_match_run()
    storing, release = threading.Event(), threading.Event()
    created: dict = {}

    def first_copy_committing_late():
        try:
            with transaction.atomic():  # match_chunk's transaction becomes a savepoint of this one
                created["first"] = match_chunk(plan.run_id, plan.chunks[0])
                storing.set()
                release.wait(10)
        finally:
            connection.close()

    def second_copy():
        try:
            created["second"] = match_chunk(plan.run_id, plan.chunks[0])
        finally:
            connection.close()

    first = threading.Thread(target=first_copy_committing_late)
    first.start()
    assert storing.wait(10)
    second = threading.Thread(target=second_copy)
    second.start()
    second.join(0.5)
    assert second.is_alive(), "the second copy should wait for the first copy's chunk marker"
    release.set()
    first.join(10)
    second.join(10)

    assert (created["first"], created["second"]) == (2, 0)
    assert Candidate.objects.filter(subscriber=reader).count() == 2
    assert MatchRun.objects.get(id=plan.run_id).chunks_done == 1


def test_a_chunk_marker_is_written_to_its_unique_index_and_no_other_but_the_key():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, MatchChunk._meta.db_table)
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"] or c["unique"] or c["primary_key"]}
    # (run, first subscriber id) leads with the run: the foreign key needs no index of its own.
    assert indexed == {("id",), ("run_id", "first_subscriber_id")}


def _run_with_readers(count):
    for number in range(30):
        make_paper(
            number,
            f"Diffusion paper {number}",
            f"Diffusion models of images, paper{number % 7}.",
            authors=["Yann LeCun"] if number % 5 == 0 else [],
        )
    topics = [
        Topic.objects.create(slug=f"t{n}", name=f"Topic {n}", description="video compression", keywords="codec")
        for n in range(3)
    ]
    readers = []
    for n in range(count):
        reader = make_subscriber(
            n,
            keywords=f"diffusion, -medical, paper{n % 7}",
            interests="diffusion models of images",
            authors=["Yann LeCun"],
            max_papers=15,  # all 30 papers stored (MATCH_STORE_PER_MAX_PAPERS = 2)
        )
        reader.topics.set(topics[: 1 + n % 3])
        readers.append(reader.id)
    # Encoded ahead, as ingestion and the saved interest have them encoded: a run only reads them.
    vectors.store_paper_vectors(list(Paper.objects.values_list("id", flat=True)))
    vectors.store_interest_vector("diffusion models of images")
    return start_match_run(), readers


def _chunk_queries(plan, readers):
    runs.clear_index_cache()
    with CaptureQueriesContext(connection) as context:
        created = match_chunk(plan.run_id, readers)
    assert created == 30 * len(readers)
    # (The run's last chunk also refreshes the statistics: see the test of ANALYZE below.)
    statements = [
        query["sql"].split(None, 1)[0] for query in context.captured_queries if not query["sql"].startswith("ANALYZE")
    ]
    return len(statements) - statements.count("INSERT"), statements.count("INSERT")


def test_a_chunk_makes_the_same_queries_for_10_or_200_subscribers_but_for_the_inserts_sqlite_splits():
    plan, readers = _run_with_readers(210)
    small_others, small_inserts = _chunk_queries(plan, readers[:10])
    large_others, large_inserts = _chunk_queries(plan, readers[10:])
    # Thirteen (one locks the rows of the subscribers given candidates), and two for the stored
    # sentence vectors (the papers', the chunk's interests'); + the candidates' advisory locks.
    assert small_others == large_others <= 15 + (connection.vendor == "postgresql")
    # SQLite takes at most 999 parameters per statement, so its insert is cut in batches; PostgreSQL's is one.
    batch = connection.ops.bulk_batch_size(
        [field for field in Candidate._meta.concrete_fields if not field.primary_key], [None] * 6000
    )
    # One more: the chunk's marker (a copy of the chunk finds it and stores nothing).
    assert (small_inserts, large_inserts) == (1 + math.ceil(300 / batch), 1 + math.ceil(6000 / batch))


@pytest.mark.postgres
def test_on_postgresql_a_chunk_of_10_or_200_subscribers_makes_exactly_the_same_queries(on_postgres):
    plan, readers = _run_with_readers(210)
    runs.clear_index_cache()
    with CaptureQueriesContext(connection) as small:
        match_chunk(plan.run_id, readers[:10])
    runs.clear_index_cache()
    with CaptureQueriesContext(connection) as large:
        assert match_chunk(plan.run_id, readers[10:]) == 6000

    def statements(context):  # the first chunk to finish the run also runs ANALYZE, tested below
        return [q["sql"].split(None, 1)[0] for q in context.captured_queries if not q["sql"].startswith("ANALYZE")]

    assert statements(small) == statements(large)


def test_the_beat_task_fans_chunks_out_after_commit(django_capture_on_commit_callbacks, settings):
    settings.MATCH_CHUNK_SIZE = 2
    make_paper(1, "Diffusion models", "Diffusion.")
    readers = [make_subscriber(n, keywords="diffusion") for n in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        run_id = match_new_papers.delay().get()
    run = MatchRun.objects.get(id=run_id)
    assert (run.chunks, run.chunks_done, run.candidates) == (3, 3, 5)
    assert run.finished_at is not None
    assert all(candidates_of(reader) == ["Diffusion models"] for reader in readers)
    assert match_new_papers.delay().get() is None


def test_the_command_reports_the_run(capsys):
    make_paper(1, "Diffusion models", "Diffusion.")
    make_subscriber(1, keywords="diffusion")
    call_command("matchpapers")
    out = capsys.readouterr().out
    assert "1 papers" in out and "1 active subscribers" in out and "1 new candidates" in out
    call_command("matchpapers")
    assert "No new papers" in capsys.readouterr().out


def test_the_chunk_task_is_safe_to_run_twice():
    make_paper(1, "Diffusion models", "Diffusion.")
    readers = [make_subscriber(n, keywords="diffusion", authors=[{"not": "a name"}, "Yann LeCun"]) for n in range(3)]
    plan = start_match_run()
    ids = [reader.id for reader in readers]
    assert match_chunk_task.delay(plan.run_id, ids).get() == 3
    assert match_chunk_task.delay(plan.run_id, ids).get() == 0
    assert Candidate.objects.count() == 3


def test_a_paper_committed_late_under_an_id_a_run_passed_is_still_matched():
    reader = make_subscriber(1, keywords="diffusion")
    make_paper(1, "Diffusion one")
    late_id = Paper.objects.get().id + 1
    make_paper(3, "Diffusion three", id=late_id + 1)  # committed first, though inserted second
    call_command("matchpapers", stdout=None)
    make_paper(2, "Diffusion two", id=late_id)  # the slow transaction commits after the run
    call_command("matchpapers", stdout=None)
    assert candidates_of(reader) == ["Diffusion one", "Diffusion three", "Diffusion two"]
    assert start_match_run() is None


def test_a_new_subscriber_is_matched_against_the_papers_of_the_last_days(settings):
    settings.MATCH_RECENT_DAYS = 7
    with time_machine.travel("2026-11-10 08:00Z"):
        make_paper(1, "Diffusion, a while ago")
    with time_machine.travel("2026-11-20 08:00Z"):
        make_paper(2, "Diffusion this week")
        make_paper(3, "Unrelated this week")
    call_command("matchpapers", stdout=None)  # before the subscriber existed
    with time_machine.travel("2026-11-21 08:00Z"):
        reader = make_subscriber(1, keywords="diffusion")
        assert match_recent_papers.delay(reader.id).get() == 1
        assert match_recent_papers.delay(reader.id).get() == 0
    assert candidates_of(reader) == ["Diffusion this week"]


def test_the_last_chunk_of_a_run_refreshes_the_planners_statistics_of_candidates_on_postgresql():
    make_paper(1, "A paper on diffusion")
    for n in range(4):
        make_subscriber(n, keywords="diffusion")
    plan = start_match_run(chunk_size=2)
    analyzed = []
    for chunk in plan.chunks:
        with CaptureQueriesContext(connection) as context:
            match_chunk(plan.run_id, chunk)
        analyzed.append([q["sql"] for q in context.captured_queries if q["sql"].startswith("ANALYZE")])
    # SQLite would read the candidates' NULL deliveries as one common value: it gets no statistics.
    assert analyzed == [[], ['ANALYZE "digest_candidate"'] if connection.vendor == "postgresql" else []]


def test_a_run_stores_a_small_multiple_of_max_papers_and_counts_the_rest(settings):
    reader = diffusion_reader(settings, papers=7, max_papers=2)
    plan = start_match_run()

    assert match_chunk(plan.run_id, plan.chunks[0]) == 4

    stored = list(Candidate.objects.filter(subscriber=reader).order_by("-score", "id"))
    assert [c.unstored for c in stored] == [0, 0, 0, 3]
    assert MatchRun.objects.get(id=plan.run_id).candidates == 4


def test_what_a_run_did_not_store_is_counted_in_the_next_digests_more(settings):
    from digest.delivery.claims import claim_chunk, pick_papers
    from digest.models import Delivery

    reader = diffusion_reader(settings, papers=7, max_papers=2)
    plan = start_match_run()
    match_chunk(plan.run_id, plan.chunks[0])

    shown, more = pick_papers(reader)
    assert (len(shown), more) == (2, 5)
    delivery = Delivery.objects.create(subscriber=reader, period="2026-11-26", scheduled_for=reader.created_at)
    claim_chunk([delivery.id], reader.created_at)
    delivery.refresh_from_db()
    assert (delivery.paper_count, delivery.more_count) == (2, 5)
    assert delivery.candidates.count() == 4


def test_papers_fetched_only_for_liked_lists_make_a_finished_run_that_matches_nobody():
    make_subscriber(1, keywords="diffusion")
    liked = make_paper(1, "Old paper on diffusion", fetched_for_liked=True)
    plan = start_match_run()
    run = MatchRun.objects.get(id=plan.run_id)
    assert plan.chunks == [] and run.finished_at is not None
    assert (run.papers, run.last_paper_id) == (0, liked.id)
    new = make_paper(2, "New paper on diffusion")
    plan = start_match_run()
    for chunk in plan.chunks:
        match_chunk(plan.run_id, chunk)
    assert MatchRun.objects.get(id=plan.run_id).papers == 1
    assert [c.paper for c in Candidate.objects.all()] == [new]


def _readers_who_write_their_keywords_differently():
    """Readers whose keywords share their keys ("problem", "problems", "Problem"), a topic listing
    the word too, an interest and a liked paper: everything a worker caches on its run's index."""
    make_paper(1, "Graph colouring", "We solve the problem of colouring sparse graphs.")
    make_paper(2, "Scheduling", "Open problems in scheduling: three problems and a method.")
    make_paper(3, "Problems of alignment", "What reward models miss.")
    liked = make_paper(4, "Sparse graphs", "Colouring sparse graphs with few colours.")
    topic = Topic.objects.create(slug="t", name="Combinatorics", description="graph colouring", keywords="Problem")
    readers = [
        make_subscriber(1, keywords="problems"),
        make_subscriber(2, keywords="problem"),
        make_subscriber(3, keywords="Problem, scheduling"),
        make_subscriber(4, keywords="graphs", interests="colouring sparse graphs"),
    ]
    readers[3].topics.set([topic])
    LikedPaper.objects.create(subscriber=readers[3], paper=liked, state=LikedPaper.State.KNOWN)
    return readers


def _candidates_matching_chunks(order, cold):
    """A fresh run's candidates, its one-reader chunks matched in `order` by one worker process,
    which keeps its run's index between chunks unless `cold`."""
    Candidate.objects.all().delete()
    runs.clear_index_cache()
    plan = start_match_run(all_papers=True, chunk_size=1)
    for position in order:
        if cold:
            runs.clear_index_cache()
        match_chunk(plan.run_id, plan.chunks[position])
    return sorted(Candidate.objects.values_list("subscriber_id", "paper_id", "score", "relevance", "reason"))


@time_machine.travel("2026-11-26 08:00Z", tick=False)
def test_a_chunk_matches_alike_whichever_chunks_its_worker_matched_before():
    _readers_who_write_their_keywords_differently()
    first = _candidates_matching_chunks([0, 1, 2, 3], cold=False)
    assert first  # the readers match something: there is something to compare
    assert _candidates_matching_chunks([3, 2, 1, 0], cold=False) == first
    assert _candidates_matching_chunks([1, 3, 0, 2], cold=False) == first
    assert _candidates_matching_chunks([0, 1, 2, 3], cold=True) == first


def in_a_thread_noting_errors(work, results, key):
    """`in_thread`, the work's exception (if it raises) stored in its place."""

    def noting_errors():
        try:
            return work()
        except Exception as error:
            return error

    return in_thread(noting_errors, results, key)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reader_rewriting_their_words_mid_chunk_and_clicking_deadlocks_nothing(on_postgres, monkeypatch):
    """The reader rewrote their interest once the chunk had read the old one's vector, and a click
    retrains their model as the chunk stores: the click locks the reader's row and stores the new
    words' vector (reader_model.retrain). A chunk that encoded and inserted that vector inside its
    transaction made the two wait for each other, the click for the chunk's uncommitted vector row
    and the chunk (its candidates' foreign key) for the reader's row, until PostgreSQL aborted one."""
    make_paper(1, "Diffusion models for images", "We denoise images with a diffusion model.")
    reader = make_subscriber(1, interests="diffusion models of images")
    vectors.store_paper_vectors(list(Paper.objects.values_list("id", flat=True)))
    vectors.store_interest_vector(reader.interests)
    plan = start_match_run()
    old, new = reader.interests, "denoising diffusion for video"
    index_vectors, lock_candidates_of = runs.stored_vectors, runs.lock_candidates_of

    def rewritten_once_read(texts):
        found = index_vectors(texts)
        if vectors.interest_text(old) in texts:
            Subscriber.objects.filter(id=reader.id).update(interests=new)
        return found

    results: dict = {}
    click_locked = threading.Event()

    def click_retrains():  # as reader_model.retrain: the reader's row first, then the examples' vectors
        with transaction.atomic():
            Subscriber.objects.select_for_update().filter(id=reader.id).first()
            click_locked.set()
            return len(vectors.stored_vectors([vectors.interest_text(new)]))

    def clicked_as_the_chunk_stores(subscriber_ids):
        results["click thread"] = in_a_thread_noting_errors(click_retrains, results, "click")
        click_locked.wait(1)  # not set while the chunk holds the reader's row (the click waits for it)
        lock_candidates_of(subscriber_ids)

    monkeypatch.setattr(runs, "stored_vectors", rewritten_once_read)
    monkeypatch.setattr(runs, "lock_candidates_of", clicked_as_the_chunk_stores)

    assert match_chunk(plan.run_id, plan.chunks[0]) == 1
    results["click thread"].join(10)
    assert results["click"] == 1
    assert MatchRun.objects.get(id=plan.run_id).chunks_done == 1


def two_diffusion_readers():
    for number in (1, 2):
        diffusion_paper(number)
    return make_subscriber(1, keywords="diffusion"), make_subscriber(2, keywords="diffusion")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reader_erased_after_the_chunk_read_them_is_left_out_and_the_others_matches_are_stored(
    on_postgres, monkeypatch
):
    """Erased (services.delete_subscriber) once the chunk had read and matched them: the chunk
    stores the others' matches and commits, where the erased reader's candidates failed the whole
    chunk at commit on their foreign key."""
    kept, erased = two_diffusion_readers()
    plan = start_match_run()
    match_subscribers = runs.match_subscribers
    results: dict = {}

    def erased_once_matched(matchers, index, *args):
        found = match_subscribers(matchers, index, *args)
        in_a_thread_noting_errors(lambda: services.delete_subscriber(erased), results, "erased").join(10)
        return found

    monkeypatch.setattr(runs, "match_subscribers", erased_once_matched)

    assert match_chunk(plan.run_id, plan.chunks[0]) == 2
    assert results["erased"] is None
    assert candidates_of(kept) == ["Diffusion models, part 1", "Diffusion models, part 2"]
    assert not Subscriber.objects.filter(id=erased.id).exists()
    assert not Candidate.objects.filter(subscriber_id=erased.id).exists()
    assert MatchRun.objects.get(id=plan.run_id).chunks_done == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reader_erased_as_the_chunk_stores_waits_for_it_and_leaves_nothing(on_postgres, monkeypatch):
    """The erasure comes as the chunk stores: it waits for the chunk's commit (the chunk holds the
    rows of the readers it stores for), then erases the candidates just stored with the reader."""
    kept, erased = two_diffusion_readers()
    plan = start_match_run()
    lock_candidates_of = runs.lock_candidates_of
    results: dict = {}

    def erased_as_the_chunk_stores(subscriber_ids):
        results["thread"] = in_a_thread_noting_errors(lambda: services.delete_subscriber(erased), results, "erased")
        results["thread"].join(0.5)
        lock_candidates_of(subscriber_ids)

    monkeypatch.setattr(runs, "lock_candidates_of", erased_as_the_chunk_stores)

    assert match_chunk(plan.run_id, plan.chunks[0]) == 4
    results["thread"].join(10)
    assert results["erased"] is None
    assert candidates_of(kept) == ["Diffusion models, part 1", "Diffusion models, part 2"]
    assert not Subscriber.objects.filter(id=erased.id).exists()
    assert not Candidate.objects.filter(subscriber_id=erased.id).exists()
    assert MatchRun.objects.get(id=plan.run_id).chunks_done == 1
