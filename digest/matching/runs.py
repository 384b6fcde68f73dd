"""Matching runs: the papers that arrived since the last run, fanned out in subscriber chunks.

`start_match_run` records a MatchRun over the new paper ids and splits the active subscribers into
chunks; `match_chunk` matches one chunk and stores Candidate rows. A chunk makes the same number of
queries whatever its size (the run, whether a later run covers it, its papers, the background texts
for the IDF, the subscribers with their topics and liked papers, their sentence vectors; then in one
transaction the chunk's marker, the candidates they already have, the subscribers' row locks, one
insert, two updates; the run's last chunk then refreshes the candidates' planner statistics) and is
safe to run twice: the unique (subscriber, paper) constraint and the already-a-candidate check mean
a paper is never offered to a subscriber twice, whatever run, version or feed brings it back.

A chunk matches before its transaction opens, so that the sentence vectors it encodes and stores
hold nobody up (`match_active`), and locks the rows of the subscribers it stores for before
writing, leaving out those erased since it read them (`store_matches`).

A chunk stores once. Its task delivered again (a worker that died before acknowledging it) would
find the first share stored and store each subscriber's next-best matches on top, and count the
chunk done twice, so that its run could finish with another chunk still unmatched. The chunk's
MatchChunk row, inserted in the transaction that stores its candidates, makes a copy store nothing.
A chunk of a run that a later run covers (a run lost past the timeout, or one an operator's
`matchpapers --all` superseded) stores nothing either: the later run matches those papers.

Papers stored only because a reader liked them (fetched from the arXiv API, often old) are not
news: `offered` leaves them out of runs and of a new reader's first match.

A run is finished when its last chunk is done. No run starts while another is under way (unfinished
and started less than MATCH_RUN_TIMEOUT_MINUTES ago): a second run over the same papers would store
each subscriber's next-best matches on top of the first run's share, with the work done twice. The
next run starts after the last finished run, so papers of a run whose chunks were lost (unfinished
past the timeout) are matched again rather than skipped, and so is the previous run's range when a
paper committed late appeared in it.
"""

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, Max, OuterRef, QuerySet
from django.utils import timezone

from config.logging import log_event
from digest.chunks import chunked
from digest.matching.engine import BatchIndex, Matcher, Matches, compile_matcher, match_subscribers, paper_doc
from digest.matching.liked import LIKED_PREFETCH, liked_paper_ids, with_liked_papers
from digest.matching.reader_model import retrain_from_every_example, with_reader_model
from digest.matching.vectors import stored_vectors
from digest.models import Candidate, MatchChunk, MatchRun, Paper, lock_candidates_of, lock_match_runs
from digest.plain_sql import insert_columns, insert_rows, lock_for_key_share, refresh_statistics
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

# Worker processes handle many chunks of one run: keep that run's index instead of rebuilding it.
_index_cache: dict[int, BatchIndex] = {}


def offered(papers: QuerySet[Paper]) -> QuerySet[Paper]:
    """The papers that may be offered as new: not those fetched only for a reader's liked list
    (arXiv may hand back a paper years old; it is that reader's signal, not news for everyone)."""
    return papers.filter(fetched_for_liked=False)


def papers_between(first_id: int, last_id: int) -> QuerySet[Paper]:
    """A run's new papers: ids in (first_id, last_id], those fetched for liked lists left out."""
    return offered(Paper.objects.filter(id__gt=first_id, id__lte=last_id))


@dataclass(frozen=True)
class RunPlan:
    run_id: int
    chunks: list[list[int]]


def run_under_way() -> MatchRun | None:
    """The latest run, if it is unfinished and started less than MATCH_RUN_TIMEOUT_MINUTES ago: its
    chunks are still queued or being matched. An unfinished run older than that has lost chunks, and
    an unfinished run with a later one after it is superseded (`superseded`)."""
    latest = MatchRun.objects.order_by("-id").first()
    since = timezone.now() - timedelta(minutes=settings.MATCH_RUN_TIMEOUT_MINUTES)
    if latest is None or latest.finished_at is not None or latest.started_at < since:
        return None
    return latest


def covered_by_a_later_run() -> Exists:
    """For a MatchRun query: whether a later run covers the run's papers, starting at or before its
    first paper (a run starts after the last finished run, so a lost run's papers are matched again)."""
    return Exists(MatchRun.objects.filter(id__gt=OuterRef("id"), first_paper_id__lte=OuterRef("first_paper_id")))


def superseded(run: MatchRun) -> bool:
    return MatchRun.objects.filter(id=run.id).filter(covered_by_a_later_run()).exists()


def claim_chunk(run_id: int, subscriber_ids: Sequence[int]) -> bool:
    """Record that the chunk's candidates are being stored; False when a copy of it stored them
    (in the caller's transaction: a copy running at the same moment waits for it on PostgreSQL)."""
    marker = {"run": run_id, "first_subscriber_id": subscriber_ids[0] if subscriber_ids else 0}
    return bool(insert_rows(MatchChunk, [marker], ignore_conflicts=True, returning=["id"]))


def start_match_run(all_papers: bool = False, chunk_size: int | None = None) -> RunPlan | None:
    """Record a run over the papers since the last finished run; None when there is nothing new or
    a run is under way (`all_papers`, an operator's choice to match everything again, starts anyway).

    1. Take the match-runs lock: two ticks' tasks taken by two workers at once would otherwise both
       find no run under way and both start one.
    2. If a run is under way, start none: the next tick after it finishes takes the papers since.
    3. Otherwise record the run over the papers after the last finished run, and its chunks.
    """
    chunk_size = chunk_size or settings.MATCH_CHUNK_SIZE
    with transaction.atomic():
        lock_match_runs()
        under_way = None if all_papers else run_under_way()
        if under_way is not None:
            log_event(log, "match.run_under_way", run_id=under_way.id, chunks_done=under_way.chunks_done)
            return None
        previous = MatchRun.objects.filter(finished_at__isnull=False).order_by("-last_paper_id", "-id").first()
        first = 0
        if previous is not None and not all_papers:
            first = previous.last_paper_id
            # Ids are handed out on insert, not on commit: a paper from a slow ingest transaction can
            # appear under an id a run already passed. Its run's range then holds more papers than
            # that run counted, so match the range again (papers already offered are skipped).
            if papers_between(previous.first_paper_id, first).count() > previous.papers:
                first = previous.first_paper_id
        last = Paper.objects.aggregate(last=Max("id"))["last"] or 0
        if last <= first:
            return None
        subscriber_ids = list(
            Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).order_by("id").values_list("id", flat=True)
        )
        papers = papers_between(first, last).count()
        # Only papers fetched for liked lists: the range is recorded as done, nobody is matched.
        chunks = list(chunked(subscriber_ids, chunk_size)) if papers else []
        run = MatchRun.objects.create(
            first_paper_id=first,
            last_paper_id=last,
            papers=papers,
            subscribers=len(subscriber_ids),
            chunks=len(chunks),
            finished_at=None if chunks else timezone.now(),
        )
    log_event(log, "match.run", run_id=run.id, papers=run.papers, subscribers=run.subscribers, chunks=run.chunks)
    return RunPlan(run_id=run.id, chunks=chunks)


def build_index(papers: QuerySet, background: QuerySet, now: datetime | None = None) -> BatchIndex:
    """Index `papers`, fitting the similarity model's IDF on them and up to MATCH_IDF_PAPERS others,
    with their recency as of `now` (default: now). Sentence vectors are the stored ones, a missing
    one encoded and stored when the index first needs it (digest/matching/vectors.py)."""
    papers = papers.annotate(source_count=Count("sources")).order_by("id")
    texts = background.order_by("-id").values_list("title", "abstract")[: settings.MATCH_IDF_PAPERS]
    return BatchIndex(
        [paper_doc(paper, paper.source_count) for paper in papers],
        background=[f"{title}. {abstract}" for title, abstract in texts],
        now=now,
        vectors=stored_vectors,
    )


def run_index(run: MatchRun) -> BatchIndex:
    """The run's papers indexed once per process (two queries when built, none when cached)."""
    cached = _index_cache.get(run.id)
    if cached is not None:
        return cached
    # Ranked as of the run's start, not the moment this process got its first chunk: every chunk
    # of a run, on whichever worker and however late it is redelivered, ranks papers alike.
    index = build_index(
        papers_between(run.first_paper_id, run.last_paper_id),
        Paper.objects.filter(id__lte=run.first_paper_id),
        now=run.started_at,
    )
    _index_cache.clear()
    _index_cache[run.id] = index
    return index


def clear_index_cache() -> None:
    _index_cache.clear()


def stored_share(matches_found: int, max_papers: int) -> int:
    """How many of a subscriber's matches from one run are stored: a small multiple of the papers a
    digest shows (MATCH_STORE_PER_MAX_PAPERS), so that the web copy's "did not fit" list has some,
    and no more than MATCH_KEEP_PER_SUBSCRIBER; the rest are counted on the last one stored."""
    return min(matches_found, max(1, settings.MATCH_STORE_PER_MAX_PAPERS * max_papers))


def subscriber_matcher(subscriber: Subscriber) -> Matcher:
    """Everything a subscriber told us, as one Matcher: preferences, liked papers, their own model
    (topics, liked papers and the model prefetched as store_matches does)."""
    return with_reader_model(with_liked_papers(compile_matcher(subscriber), subscriber), subscriber)


def candidates_already(subscriber_ids: list[int], index: BatchIndex) -> set[tuple[int, int]]:
    """(subscriber id, paper id) of the candidates the subscribers have among the index's papers.

    Asked by the range of the index's paper ids (the pairs outside the index are never looked up),
    so that PostgreSQL reads it from the (subscriber, paper) index: a few rows per subscriber.
    Asked as "paper in the run's papers", its planner may instead walk the paper index over every
    candidate of those papers, the whole run so far, once per chunk (docs/decisions.md).
    """
    if not index.size:
        return set()
    return set(
        Candidate.objects.filter(
            subscriber_id__in=subscriber_ids, paper_id__gte=int(index.ids.min()), paper_id__lte=int(index.ids.max())
        ).values_list("subscriber_id", "paper_id")
    )


def new_candidates(
    subscribers: Sequence[Subscriber], found: Mapping[int, Matches], already: set[tuple[int, int]]
) -> dict[str, list]:
    """The candidate rows to store, by column (`insert_columns`): each subscriber's matches not
    `already` theirs, best first, at most `stored_share` of them, the last stored counting the others."""
    columns: dict[str, list] = {
        name: [] for name in ("subscriber", "paper", "score", "relevance", "reason", "unstored")
    }
    for subscriber in subscribers:
        matches = found[subscriber.id]
        new = [n for n, paper_id in enumerate(matches.paper_ids) if (subscriber.id, paper_id) not in already]
        kept = new[: stored_share(len(new), subscriber.max_papers)]
        if not kept:
            continue
        columns["subscriber"] += [subscriber.id] * len(kept)
        columns["paper"] += [matches.paper_ids[n] for n in kept]  # best first, as the engine ranks them
        columns["score"] += [matches.scores[n] for n in kept]
        columns["relevance"] += [matches.relevance[n] for n in kept]
        columns["reason"] += [matches.reasons[n] for n in kept]
        columns["unstored"] += [0] * (len(kept) - 1) + [len(new) - len(kept)]
    return columns


def match_active(subscriber_ids: list[int], index: BatchIndex) -> tuple[Sequence[Subscriber], dict[int, Matches]]:
    """The active subscribers among `subscriber_ids` (topics, liked papers and model prefetched) and
    their matches against the index.

    Called outside any transaction: the sentence vectors matching reads are stored ones, and one
    not stored yet (papers no vector task has stored, a reader's words changed a moment ago) is
    encoded and stored here (digest/matching/vectors.py). Inserted inside a transaction, that row
    would hold every other worker storing the same text, a click's retraining among them (it
    stores its examples' vectors holding the reader's row), until the transaction commits.
    """
    subscribers = list(
        Subscriber.objects.filter(id__in=subscriber_ids, status=Subscriber.Status.ACTIVE)
        .select_related("reader_model")
        .prefetch_related("topics", LIKED_PREFETCH)
    )
    return subscribers, match_subscribers(
        {subscriber.id: subscriber_matcher(subscriber) for subscriber in subscribers}, index
    )


def store_matches(subscribers: Sequence[Subscriber], found: Mapping[int, Matches], index: BatchIndex) -> int:
    """Store the subscribers' new candidates (`new_candidates`), in the caller's transaction.

    The rows of the subscribers given candidates are locked first (`lock_for_key_share`, in id
    order, the subscriber's row before what hangs off it, as `lock_subscriber` says), and those
    erased since they were read are left out: their candidates would fail the whole commit on the
    foreign key. An erasure coming after the lock waits for the commit, then erases what was stored.
    """
    already = candidates_already([subscriber.id for subscriber in subscribers], index) | liked_paper_ids(subscribers)
    columns = new_candidates(subscribers, found, already)
    present = lock_for_key_share(Subscriber, columns["subscriber"])
    if len(present) < len(set(columns["subscriber"])):
        columns = new_candidates([subscriber for subscriber in subscribers if subscriber.id in present], found, already)
    # Before the insert takes its ids, and held to the commit: digests take id ranges of a
    # subscriber's candidates, so those must commit in id order (digest/delivery/claims.py).
    lock_candidates_of(columns["subscriber"])
    # ignore_conflicts: a copy of this work running at the same moment cannot double a row.
    insert_columns(Candidate, columns, ignore_conflicts=True)
    return len(columns["paper"])


def match_chunk(run_id: int, subscriber_ids: list[int]) -> int:
    """Match one chunk of subscribers against the run's papers; returns the candidates created."""
    started = time.perf_counter()
    run = MatchRun.objects.get(id=run_id)
    if superseded(run):
        log_event(log, "match.chunk_superseded", run_id=run_id, subscribers=len(subscriber_ids))
        return 0
    index = run_index(run)
    subscribers, found = match_active(subscriber_ids, index)
    with transaction.atomic():
        if not claim_chunk(run_id, subscriber_ids):
            log_event(log, "match.chunk_stored_before", run_id=run_id, subscribers=len(subscriber_ids))
            return 0
        created = store_matches(subscribers, found, index)
        MatchRun.objects.filter(id=run_id).update(
            candidates=F("candidates") + created, chunks_done=F("chunks_done") + 1
        )
        finished = MatchRun.objects.filter(id=run_id, finished_at__isnull=True, chunks_done__gte=F("chunks")).update(
            finished_at=timezone.now()
        )
    if finished:
        refresh_statistics(Candidate)
    log_event(
        log,
        "match.chunk",
        run_id=run_id,
        subscribers=len(subscriber_ids),
        papers=index.size,
        candidates=created,
        ms=round((time.perf_counter() - started) * 1000),
    )
    return created


def match_recent_papers(subscriber_id: int, days: int | None = None) -> int:
    """Match one subscriber against the papers of the last days.

    Runs only take papers newer than the last run, so a subscriber who has just confirmed (or
    changed preferences) would otherwise see nothing until new papers arrive. Whatever queued it
    (new words, a liked paper fetched since, a click undone) may change what the reader's model
    learns from, so the model is retrained first.
    """
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is not None:
        retrain_from_every_example(subscriber)
    days = settings.MATCH_RECENT_DAYS if days is None else days
    since = timezone.now() - timedelta(days=days)
    recent = offered(Paper.objects.filter(first_seen__gte=since))
    index = build_index(recent, Paper.objects.filter(first_seen__lt=since))
    subscribers, found = match_active([subscriber_id], index)
    with transaction.atomic():
        return store_matches(subscribers, found, index)
