"""Storing parsed papers: one row per paper however many feeds announce it, in bulk.

A batch costs a constant number of queries per chunk (load existing, insert new, update changed,
link sources), never a query per paper. Merging rules:
- a newer arXiv version replaces the paper's text and metadata;
- an older version changes nothing;
- the same (or an unknown) version only fills what is missing, keeps the most upvotes, and
  adds links (code, project page) the row lacks: Hugging Face brings votes and code, arXiv
  brings categories.
"""

from dataclasses import dataclass, fields, replace
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from digest.feed_parsing import ParsedPaper
from digest.models import Feed, Paper, PaperSource

# Rows per round trip: keeps every IN list and INSERT under SQLite's bound-parameter limit.
CHUNK_SIZE = 500

# Fields a newer version overwrites when it brings a value.
VERSIONED_FIELDS = (
    "title", "abstract", "authors", "categories", "primary_category", "updated",
    "url", "pdf_url", "doi", "journal_ref", "comment",
)
# Fields any sighting may fill when the row has none yet.
FILLABLE_FIELDS = VERSIONED_FIELDS + ("published", "code_url", "project_url")
UPDATE_FIELDS = ["version", "upvotes", "last_changed", "arxiv_id", *FILLABLE_FIELDS]


@dataclass
class StoreCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0

    def __add__(self, other: "StoreCounts") -> "StoreCounts":
        return StoreCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def store_papers(papers: list[ParsedPaper], feed: Feed | None = None) -> StoreCounts:
    """Upsert a batch atomically: a crash midway leaves the database as it was."""
    try:
        with transaction.atomic():
            return _store(papers, feed)
    except IntegrityError:
        # Another worker inserted one of these papers between our read and our insert: the
        # second attempt sees its row and merges into it.
        with transaction.atomic():
            return _store(papers, feed)


def _store(papers: list[ParsedPaper], feed: Feed | None) -> StoreCounts:
    counts = StoreCounts()
    unique = _merge_duplicates(papers)
    counts.unchanged += len(papers) - len(unique)
    for start in range(0, len(unique), CHUNK_SIZE):
        counts += _store_chunk(unique[start : start + CHUNK_SIZE], feed)
    return counts


def _merge_duplicates(papers: list[ParsedPaper]) -> list[ParsedPaper]:
    merged: dict[str, ParsedPaper] = {}
    for parsed in papers:
        earlier = merged.get(parsed.guid)
        if earlier is None:
            merged[parsed.guid] = parsed
        else:
            row = _new_row(earlier)
            _apply(row, parsed)
            # Two sightings without a version stay versionless, so neither counts as "older".
            known = earlier.version or parsed.version
            merged[parsed.guid] = replace(_as_parsed(row), version=row.version if known else None)
    return list(merged.values())


def _store_chunk(papers: list[ParsedPaper], feed: Feed | None) -> StoreCounts:
    counts = StoreCounts()
    guids = [p.guid for p in papers]
    # The guid is the arXiv id when there is one: only older rows keyed otherwise need the second list.
    arxiv_ids = [p.arxiv_id for p in papers if p.arxiv_id and p.arxiv_id != p.guid]
    existing: dict[str, Paper] = {}
    for row in Paper.objects.filter(Q(guid__in=guids) | Q(arxiv_id__in=arxiv_ids)):
        existing[row.guid] = row
        if row.arxiv_id:
            existing[row.arxiv_id] = row

    now = timezone.now()
    new_rows: list[Paper] = []
    changed: list[Paper] = []
    for parsed in papers:
        row = existing.get(parsed.arxiv_id or "") or existing.get(parsed.guid)
        if row is None:
            new_rows.append(_new_row(parsed))
        elif _apply(row, parsed):
            row.last_changed = now
            changed.append(row)
        else:
            counts.unchanged += 1
    Paper.objects.bulk_create(new_rows, batch_size=CHUNK_SIZE)
    Paper.objects.bulk_update(changed, UPDATE_FIELDS, batch_size=CHUNK_SIZE)
    counts.new, counts.updated = len(new_rows), len(changed)

    if feed is not None:
        _link_sources(feed, papers, existing, new_rows)
    return counts


def _link_sources(feed: Feed, papers: list[ParsedPaper], existing: dict[str, Paper], new_rows: list[Paper]) -> None:
    ids = {row.pk for row in existing.values()}
    ids.update(row.pk for row in new_rows if row.pk)
    if any(row.pk is None for row in new_rows):
        # Backends that cannot return inserted ids: one query finds them.
        ids.update(Paper.objects.filter(guid__in=[p.guid for p in papers]).values_list("pk", flat=True))
    PaperSource.objects.bulk_create(
        [PaperSource(paper_id=pk, feed=feed) for pk in ids], ignore_conflicts=True, batch_size=CHUNK_SIZE
    )


def _new_row(parsed: ParsedPaper) -> Paper:
    return Paper(
        arxiv_id=parsed.arxiv_id,
        guid=parsed.guid,
        version=parsed.version or 1,
        upvotes=parsed.upvotes or 0,
        **{name: _value(parsed, name) for name in FILLABLE_FIELDS},
    )


def _as_parsed(row: Paper) -> ParsedPaper:
    return ParsedPaper(
        guid=row.guid,
        arxiv_id=row.arxiv_id,
        version=row.version,
        upvotes=row.upvotes,
        **{name: getattr(row, name) for name in FILLABLE_FIELDS},
    )


def _value(parsed: ParsedPaper, name: str):
    value = getattr(parsed, name)
    return list(value) if isinstance(value, list) else value


def _apply(row: Paper, parsed: ParsedPaper) -> bool:
    """Merge one sighting into a row; True when the row changed."""
    before = {name: getattr(row, name) for name in UPDATE_FIELDS}
    if parsed.version and parsed.version < row.version:
        return False
    if parsed.version and parsed.version > row.version:
        row.version = parsed.version
        for name in VERSIONED_FIELDS:
            if _present(getattr(parsed, name)):
                setattr(row, name, _value(parsed, name))
    for name in FILLABLE_FIELDS:
        if not _present(getattr(row, name)) and _present(getattr(parsed, name)):
            setattr(row, name, _value(parsed, name))
    if parsed.arxiv_id and not row.arxiv_id:
        row.arxiv_id = parsed.arxiv_id
    if parsed.upvotes is not None and parsed.upvotes > row.upvotes:
        row.upvotes = parsed.upvotes
    if isinstance(row.updated, datetime) and isinstance(parsed.updated, datetime) and parsed.updated > row.updated:
        row.updated = parsed.updated
    return any(getattr(row, name) != value for name, value in before.items())


def _present(value) -> bool:
    return value is not None and value != "" and value != []
