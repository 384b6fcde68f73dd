"""Storing parsed papers: one row per paper however many feeds announce it, in bulk.

A batch costs a constant number of queries per chunk (load existing, insert new, update changed,
link sources), never a query per paper. Merging rules:
- only arXiv's own feeds (`from_arxiv`, decided by ingestion from the feed's kind and host) set
  an arXiv paper's text and version: any feed can claim to be arXiv, or link an arXiv id;
- the first arXiv sighting of a paper another feed created replaces its text and version;
- after that, a newer arXiv version replaces the text and metadata, and an older one changes nothing;
- the same (or an unknown) version only fills what is missing, keeps the most upvotes and
  comments, and adds links (code, project page, thumbnail) and the organisation the row lacks:
  Hugging Face brings votes, comments and code, arXiv brings categories;
- other feeds may create a paper (it must exist to be recommended) and add upvotes, comments,
  code and project links, organisation and thumbnail, but never change the version, nor any text once arXiv has set it.

Whatever stores papers (feeds, the admin's "Poll now", the commands, the seeds, the fetches for
readers' liked papers) comes through here, so this is where the sentence vectors of a new title or
abstract are queued for a worker (digest/matching/vectors.py), by task name: matching comes after
this stage of the pipeline.
"""

from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.celery import queue_on_commit_or_warn
from digest.chunks import chunked
from digest.models import Feed, Paper, PaperSource
from digest.papers.feed_parsing import ParsedPaper
from digest.plain_sql import insert_for_each

# Rows per round trip: keeps every IN list and INSERT under SQLite's bound-parameter limit.
CHUNK_SIZE = 500

# Fields a newer version overwrites when it brings a value.
VERSIONED_FIELDS = (
    "title",
    "abstract",
    "authors",
    "categories",
    "primary_category",
    "updated",
    "url",
    "pdf_url",
    "doi",
    "journal_ref",
    "comment",
)
# What other feeds contribute to a paper whose text came from arXiv (when the row has none yet).
CONTRIBUTED_FIELDS = ("code_url", "project_url", "organization", "thumbnail_url")
# Fields any sighting may fill when the row has none yet (while arXiv has not set its text).
FILLABLE_FIELDS = VERSIONED_FIELDS + ("published", *CONTRIBUTED_FIELDS)
# What arXiv's first sighting replaces outright, even with nothing: no other feed's text may stay.
ARXIV_TEXT_FIELDS = ("title", "abstract", "authors", "categories", "primary_category")
# Papers per `digest.store_paper_vectors` task: about 13 s of encoding, so a feed's new papers
# spread over the matching workers.
PAPERS_PER_TASK = 100
UPDATE_FIELDS = ["version", "upvotes", "num_comments", "last_changed", "arxiv_id", "text_from_arxiv", *FILLABLE_FIELDS]


@dataclass
class StoreCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    # Papers new or with a new title or abstract: their sentence vectors are to be encoded
    # (digest/matching/vectors.py). Not a count: left out of comparisons.
    new_text: list[int] = field(default_factory=list, compare=False, repr=False)

    def __add__(self, other: "StoreCounts") -> "StoreCounts":
        return StoreCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def store_papers(
    papers: list[ParsedPaper], feed: Feed | None = None, *, from_arxiv: bool = False, for_liked: bool = False
) -> StoreCounts:
    """Upsert a batch atomically: a crash midway leaves the database as it was.

    `from_arxiv`: the batch comes from one of arXiv's own feeds, which alone set arXiv text and versions.
    `for_liked`: fetched only because readers liked these papers; the new ones are never offered as
    new (Paper.fetched_for_liked), and a feed's later sighting lifts that.
    The vectors of the new texts (`StoreCounts.new_text`) are queued once the batch commits.
    """
    try:
        with transaction.atomic():
            counts = _store(papers, feed, from_arxiv, for_liked)
    except IntegrityError:
        # Another worker inserted one of these papers between our read and our insert: the
        # second attempt sees its row and merges into it.
        with transaction.atomic():
            counts = _store(papers, feed, from_arxiv, for_liked)
    _queue_paper_vectors(counts.new_text)
    return counts


def _queue_paper_vectors(paper_ids: list[int]) -> None:
    """Queue `digest.store_paper_vectors`, PAPERS_PER_TASK papers a task, once the transaction
    commits (at once outside one)."""
    for group in chunked(sorted(set(paper_ids)), PAPERS_PER_TASK):
        queue_on_commit_or_warn(
            "digest.store_paper_vectors", group, otherwise="the first run that meets these papers encodes them"
        )


def _store(papers: list[ParsedPaper], feed: Feed | None, from_arxiv: bool, for_liked: bool) -> StoreCounts:
    counts = StoreCounts()
    unique = _merge_duplicates(papers, from_arxiv)
    counts.unchanged += len(papers) - len(unique)
    for start in range(0, len(unique), CHUNK_SIZE):
        counts += _store_chunk(unique[start : start + CHUNK_SIZE], feed, from_arxiv, for_liked)
    return counts


def _merge_duplicates(papers: list[ParsedPaper], from_arxiv: bool) -> list[ParsedPaper]:
    merged: dict[str, ParsedPaper] = {}
    for parsed in papers:
        earlier = merged.get(parsed.guid)
        if earlier is None:
            merged[parsed.guid] = parsed
        else:
            row = _new_row(earlier, from_arxiv)
            _apply(row, parsed, from_arxiv)
            # Two sightings without a version stay versionless, so neither counts as "older".
            known = earlier.version or parsed.version
            merged[parsed.guid] = replace(_as_parsed(row), version=row.version if known else None)
    return list(merged.values())


def _store_chunk(papers: list[ParsedPaper], feed: Feed | None, from_arxiv: bool, for_liked: bool) -> StoreCounts:
    counts = StoreCounts()
    guids = [p.guid for p in papers]
    # The guid is the arXiv id when there is one: only older rows keyed otherwise need the second list.
    arxiv_ids = [p.arxiv_id for p in papers if p.arxiv_id and p.arxiv_id != p.guid]
    existing: dict[str, Paper] = {}
    for stored in Paper.objects.filter(Q(guid__in=guids) | Q(arxiv_id__in=arxiv_ids)):
        existing[stored.guid] = stored
        if stored.arxiv_id:
            existing[stored.arxiv_id] = stored

    now = timezone.now()
    new_rows: list[Paper] = []
    changed: list[Paper] = []
    for parsed in papers:
        row = existing.get(parsed.arxiv_id or "") or existing.get(parsed.guid)
        if row is None:
            new_rows.append(_new_row(parsed, from_arxiv, fetched_for_liked=for_liked))
        else:
            text = (row.title, row.abstract)
            if _apply(row, parsed, from_arxiv):
                row.last_changed = now
                changed.append(row)
                if (row.title, row.abstract) != text:
                    counts.new_text.append(row.pk)
            else:
                counts.unchanged += 1
    Paper.objects.bulk_create(new_rows, batch_size=CHUNK_SIZE)
    Paper.objects.bulk_update(changed, UPDATE_FIELDS, batch_size=CHUNK_SIZE)
    counts.new, counts.updated = len(new_rows), len(changed)
    counts.new_text += [row.pk for row in new_rows if row.pk is not None]

    if feed is not None:
        _link_sources(feed, papers)
        # A feed carries it now: it is news like any other paper (the next run's range may hold it).
        liked_only = {row.pk for row in existing.values() if row.fetched_for_liked}
        if liked_only:
            Paper.objects.filter(pk__in=liked_only).update(fetched_for_liked=False)
    return counts


def _link_sources(feed: Feed, papers: list[ParsedPaper]) -> None:
    """Record that `feed` announced these papers: one INSERT ... SELECT, no model instance per link
    (a PaperSource object per paper cost a fifth of storing)."""
    guids = [p.guid for p in papers]
    # Rows keyed by another guid but carrying the arXiv id (see _store_chunk) are found by id.
    arxiv_ids = [p.arxiv_id for p in papers if p.arxiv_id and p.arxiv_id != p.guid]
    link = {"feed": feed.pk, "first_seen": timezone.now()}
    insert_for_each(PaperSource, "paper", link, Paper, {"guid": guids, "arxiv_id": arxiv_ids})


def _new_row(parsed: ParsedPaper, from_arxiv: bool, *, fetched_for_liked: bool = False) -> Paper:
    return Paper(
        fetched_for_liked=fetched_for_liked,
        arxiv_id=parsed.arxiv_id,
        guid=parsed.guid,
        version=(parsed.version or 1) if from_arxiv else 1,
        upvotes=parsed.upvotes or 0,
        num_comments=parsed.num_comments,
        text_from_arxiv=from_arxiv,
        **{name: _value(parsed, name) for name in FILLABLE_FIELDS},
    )


def _as_parsed(row: Paper) -> ParsedPaper:
    return ParsedPaper(
        guid=row.guid,
        arxiv_id=row.arxiv_id,
        version=row.version,
        upvotes=row.upvotes,
        num_comments=row.num_comments,
        **{name: getattr(row, name) for name in FILLABLE_FIELDS},
    )


def _value(parsed: ParsedPaper, name: str) -> object:
    value = getattr(parsed, name)
    return list(value) if isinstance(value, list) else value


def _apply(row: Paper, parsed: ParsedPaper, from_arxiv: bool) -> bool:
    """Merge one sighting into a row; True when the row changed."""
    before = {name: getattr(row, name) for name in UPDATE_FIELDS}
    if from_arxiv and not row.text_from_arxiv:
        _take_over(row, parsed)
    elif from_arxiv and parsed.version and parsed.version < row.version:
        return False
    elif from_arxiv and parsed.version and parsed.version > row.version:
        row.version = parsed.version
        _replace_present(row, parsed, VERSIONED_FIELDS)
    writes_text = from_arxiv or not row.text_from_arxiv
    for name in FILLABLE_FIELDS if writes_text else CONTRIBUTED_FIELDS:
        if not _present(getattr(row, name)) and _present(getattr(parsed, name)):
            setattr(row, name, _value(parsed, name))
    if parsed.arxiv_id and not row.arxiv_id:
        row.arxiv_id = parsed.arxiv_id
    if parsed.upvotes is not None and parsed.upvotes > row.upvotes:
        row.upvotes = parsed.upvotes
    if parsed.num_comments is not None and (row.num_comments is None or parsed.num_comments > row.num_comments):
        row.num_comments = parsed.num_comments
    if (
        writes_text
        and isinstance(row.updated, datetime)
        and isinstance(parsed.updated, datetime)
        and parsed.updated > row.updated
    ):
        row.updated = parsed.updated
    return any(getattr(row, name) != value for name, value in before.items())


def _take_over(row: Paper, parsed: ParsedPaper) -> None:
    """arXiv's first sighting of a row another feed wrote: its text and version replace theirs.

    The version too may go down: another feed's number was never arXiv's (rows stored before
    arXiv's sightings were told apart may hold one).
    """
    row.text_from_arxiv = True
    row.version = parsed.version or 1
    for name in ARXIV_TEXT_FIELDS:
        setattr(row, name, _value(parsed, name))
    _replace_present(row, parsed, (*VERSIONED_FIELDS, "published"))


def _replace_present(row: Paper, parsed: ParsedPaper, names: tuple[str, ...]) -> None:
    for name in names:
        if _present(getattr(parsed, name)):
            setattr(row, name, _value(parsed, name))


def _present(value: object) -> bool:
    return value is not None and value != "" and value != []
